"""An embedded S3 server (moto) on 127.0.0.1, with a bucket set up as terraform/ sets one up.

For development and demos only: everything lives in this process's memory and is
gone when the server stops. moto comes with the optional extra `s3store[local]`
and is imported only when a server starts, so the library never pays for it.
"""

from __future__ import annotations

import errno
import io
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aioboto3
from botocore.session import Session as BotocoreSession

from s3store.errors import ConfigurationError
from s3store.s3 import S3SessionStore, check_bucket_name

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from typing_extensions import Self
    from werkzeug.serving import BaseWSGIServer

__all__ = ["DEFAULT_BUCKET", "LOCAL_CREDENTIALS", "LOCAL_REGION", "LocalS3", "MotoServer"]

DEFAULT_BUCKET = "agent-sessions"
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = ("local", "local")
"""Access key id and secret: moto takes any, and fixed ones spare the user real credentials."""


class LocalS3:
    """A moto S3 server on 127.0.0.1 with one bucket, for as long as the `with` block lasts.

    The bucket is set up as the Terraform module provisions it: versioning
    Enabled, SSE-KMS with a bucket key under a rotating customer key, every
    public access block on and object ownership enforced. Only the TLS-only
    bucket policy is left out: the server speaks plain HTTP on loopback.

    moto keeps its buckets per process, not per server: two servers started in
    one process see the same buckets, and stopping one does not empty them.
    """

    def __init__(self, bucket: str = DEFAULT_BUCKET, *, port: int = 0) -> None:
        check_bucket_name(bucket)
        self.bucket = bucket
        self.port = port
        self._server: MotoServer | None = None
        self.endpoint_url = ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server, create the bucket, and return the endpoint URL."""
        self._server = MotoServer(port=self.port)
        self.endpoint_url = self._server.start()
        try:
            self._create_bucket()
        except Exception:
            self.stop()
            raise
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def store(self, **options: Any) -> S3SessionStore:
        """A store on this server's bucket; `options` go to `S3SessionStore` (prefix, ...)."""
        key_id, secret = LOCAL_CREDENTIALS
        session = aioboto3.Session(
            aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=LOCAL_REGION
        )
        return S3SessionStore(
            self.bucket, session=session, endpoint_url=self.endpoint_url, **options
        )

    def environment(self, prefix: str) -> dict[str, str]:
        """The variables that point `S3SessionStore.from_env()` (and the CLI) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS[0],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS[1],
            # botocore reads AWS_DEFAULT_REGION; other SDKs and Lambda use AWS_REGION.
            "AWS_REGION": LOCAL_REGION,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "S3STORE_BUCKET": self.bucket,
            "S3STORE_PREFIX": prefix,
        }

    def _create_bucket(self) -> None:
        # Plain botocore, once, at start-up: the async client is for the store's own work.
        botocore = BotocoreSession()
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": LOCAL_REGION,
            "aws_access_key_id": LOCAL_CREDENTIALS[0],
            "aws_secret_access_key": LOCAL_CREDENTIALS[1],
        }
        kms: Any = botocore.create_client("kms", **options)
        key_arn = kms.create_key(Description=f"s3store sessions in {self.bucket}")["KeyMetadata"][
            "Arn"
        ]
        kms.enable_key_rotation(KeyId=key_arn)
        s3: Any = botocore.create_client("s3", **options)
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=self.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key_arn,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_ownership_controls(
            Bucket=self.bucket,
            OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        )


class MotoServer:
    """moto's S3 and KMS on 127.0.0.1, served from a thread, one request at a time.

    moto checks `If-Match` and `If-None-Match` and then writes, with nothing to stop
    another request in between, and sets an object's metadata after storing it: two
    conditional PUTs on one ETag can both land (a lost update), and a HEAD can find
    an object without its write history. S3 applies each request atomically; this
    server does too, by handling one request at a time. Bodies are read before and
    sent after, outside the lock, so a slow client holds up no one.
    """

    def __init__(self, *, port: int = 0) -> None:
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Start serving and return the endpoint URL.

        Raises `ConfigurationError` when moto is not installed or the port is taken.
        """
        try:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
        except ImportError:
            raise ConfigurationError(
                "the embedded S3 server needs moto: pip install 's3store[local]', or pass "
                "--bucket (or set S3STORE_BUCKET) to use a real bucket"
            ) from None
        from werkzeug.serving import make_server

        # werkzeug logs every request at INFO, which would bury the command's own output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = _one_server_header(
            _one_request_at_a_time(DomainDispatcherApplication(create_backend_app))
        )
        # Bound here, not by werkzeug, which answers a busy port by printing two lines
        # and exiting the process.
        with self._listen() as listening:
            self._server = make_server(
                "127.0.0.1",
                self.port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listening.fileno(),
            )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _listen(self) -> socket.socket:
        """A socket listening on 127.0.0.1 at `port`; `ConfigurationError` if it cannot."""
        try:
            return socket.create_server(("127.0.0.1", self.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {self.port} on 127.0.0.1 is in use by another program: stop it, "
                    "or choose another port (--port for s3store local; 0 picks a free one)"
                ) from None
            raise ConfigurationError(
                f"cannot listen on 127.0.0.1 port {self.port}: {exc.strerror or exc}; "
                "choose another port (--port for s3store local; 0 picks a free one)"
            ) from None


def _one_server_header(app: WSGIApplication) -> WSGIApplication:
    """Drops the `Server` header moto puts on its error answers: the request handler
    sends its own on every answer, and a second one makes aiohttp's strict parser
    (`python -X dev`, PYTHONASYNCIODEBUG) refuse the answer, a 404 or 412 included."""

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            kept = [(name, value) for name, value in headers if name.lower() != "server"]
            return start_response(status, kept, exc_info)

        return app(environ, start)

    return serve


def _one_request_at_a_time(app: WSGIApplication) -> WSGIApplication:
    from werkzeug.wsgi import get_input_stream

    lock = threading.Lock()

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        with lock:
            response = app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                getattr(response, "close", lambda: None)()

    return serve
