"""`python -m s3store`: the `s3store` command."""

from s3store.cli import main

main()
