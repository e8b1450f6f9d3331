data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id

  # Built from inputs rather than read back from the bucket, so that every policy
  # is known at plan time and can be reviewed (and tested) before apply.
  bucket_arn   = "arn:${local.partition}:s3:::${var.bucket_name}"
  sessions_arn = "${local.bucket_arn}/${var.prefix}*"

  kms_key_arn = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.sessions[0].arn
  # S3 names KMS in the request's region; the bucket's region is where S3 calls KMS from.
  s3_service = "s3.${aws_s3_bucket.sessions.region}.${data.aws_partition.current.dns_suffix}"

  iam_name_prefix = coalesce(var.iam_name_prefix, var.bucket_name)
}

# -- encryption key -------------------------------------------------------------

resource "aws_kms_key" "sessions" {
  count = var.kms_key_arn == null ? 1 : 0

  description             = "Encrypts the agent sessions in s3://${var.bucket_name}/${var.prefix}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_in_days

  # The same as KMS's default key policy, written out: the account's IAM policies
  # (the agent policy below) decide who may use the key.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EnableIAMPolicies"
      Effect    = "Allow"
      Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })

  tags = var.tags
}

# -- bucket ---------------------------------------------------------------------

resource "aws_s3_bucket" "sessions" {
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket that the user's organisation usually already has; server access logs would also record session keys. Enable it at the organisation level.
  #checkov:skip=CKV_AWS_144:Cross-region replication needs a second bucket, region and key; recovery within the region comes from versioning.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events from the session bucket; notifications would only add cost.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_versioning" "sessions" {
  bucket = aws_s3_bucket.sessions.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "sessions" {
  bucket = aws_s3_bucket.sessions.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    # One data key per bucket instead of one KMS call per object: cheaper, faster,
    # and fewer KMS throttles under many agents.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "sessions" {
  bucket = aws_s3_bucket.sessions.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "sessions" {
  bucket = aws_s3_bucket.sessions.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

locals {
  tls_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyWithoutTLS"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arn, "${local.bucket_arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyBelowTLS12"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arn, "${local.bucket_arn}/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
  }
}

resource "aws_s3_bucket_policy" "tls" {
  count = var.enforce_tls ? 1 : 0

  bucket = aws_s3_bucket.sessions.id
  policy = jsonencode(local.tls_policy)

  # S3 rejects a bucket policy while the public access block is being changed.
  depends_on = [aws_s3_bucket_public_access_block.sessions]
}

resource "aws_s3_bucket_lifecycle_configuration" "sessions" {
  #checkov:skip=CKV_AWS_300:False positive: when this module is called from another (examples/lambda), checkov 3.3 renders the dynamic expire-sessions rule in place of the static ones; the abort-incomplete-multipart-uploads rule below is there, and tests/module.tftest.hcl asserts it.
  bucket = aws_s3_bucket.sessions.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  # Once a deleted session's versions have expired, its delete marker is all that
  # is left: remove it so listings and costs do not grow with deleted sessions.
  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"
    filter {}

    expiration {
      expired_object_delete_marker = true
    }
  }

  dynamic "rule" {
    for_each = var.session_expiration_days == null ? [] : [var.session_expiration_days]
    content {
      id     = "expire-sessions"
      status = "Enabled"

      filter {
        prefix = var.prefix
      }

      expiration {
        days = rule.value
      }
    }
  }

  # Lifecycle rules on noncurrent versions only act once versioning is on.
  depends_on = [aws_s3_bucket_versioning.sessions]
}

# -- IAM ------------------------------------------------------------------------

locals {
  # Only S3 may use the key for the agents, and only for this bucket: with a bucket
  # key the encryption context is the bucket's ARN (without one, the object's).
  kms_via_s3 = {
    StringEquals = { "kms:ViaService" = local.s3_service }
    StringLike = {
      "kms:EncryptionContext:aws:s3:arn" = [local.bucket_arn, local.sessions_arn]
    }
  }

  agent_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ListSessions"
        Effect    = "Allow"
        Action    = ["s3:ListBucket"]
        Resource  = [local.bucket_arn]
        Condition = { StringLike = { "s3:prefix" = ["${var.prefix}*"] } }
      },
      {
        # GetObject also covers HeadObject; PutObject covers conditional writes.
        Sid      = "ReadWriteSessions"
        Effect   = "Allow"
        Action   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
        Resource = [local.sessions_arn]
      },
      {
        Sid       = "UseSessionKeyThroughS3"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = [local.kms_key_arn]
        Condition = local.kms_via_s3
      },
    ]
  }

  # What S3SessionStore.history() and load(version_id=) need: listing a session's
  # versions and reading them (an old version is a GET with a versionId, which is
  # s3:GetObjectVersion, not s3:GetObject), and the key to decrypt them. With the
  # agent policy it is also what restore() needs (that version read, then a HEAD
  # and a conditional PUT of the current object). No delete of any kind.
  history_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ListSessionVersions"
        Effect    = "Allow"
        Action    = ["s3:ListBucketVersions"]
        Resource  = [local.bucket_arn]
        Condition = { StringLike = { "s3:prefix" = ["${var.prefix}*"] } }
      },
      {
        Sid      = "ReadSessionVersions"
        Effect   = "Allow"
        Action   = ["s3:GetObjectVersion"]
        Resource = [local.sessions_arn]
      },
      {
        Sid       = "DecryptSessionsThroughS3"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [local.kms_key_arn]
        Condition = local.kms_via_s3
      },
    ]
  }

  # What S3SessionStore.purge() needs beyond the agent policy: listing every
  # version of a session and deleting versions and delete markers for good.
  eraser_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ListSessionVersions"
        Effect    = "Allow"
        Action    = ["s3:ListBucketVersions"]
        Resource  = [local.bucket_arn]
        Condition = { StringLike = { "s3:prefix" = ["${var.prefix}*"] } }
      },
      {
        Sid      = "EraseSessionVersions"
        Effect   = "Allow"
        Action   = ["s3:DeleteObjectVersion"]
        Resource = [local.sessions_arn]
      },
    ]
  }
}

resource "aws_iam_policy" "agent" {
  name        = "${local.iam_name_prefix}-agent"
  path        = var.iam_path
  description = "Agent access to the sessions in s3://${var.bucket_name}/${var.prefix} and nothing else."
  policy      = jsonencode(local.agent_policy)
  tags        = var.tags
}

resource "aws_iam_policy" "history" {
  count = var.create_history_policy ? 1 : 0

  name        = "${local.iam_name_prefix}-history"
  path        = var.iam_path
  description = "Read-only access to every version of the sessions in s3://${var.bucket_name}/${var.prefix} (history, load of a version; restore with the agent policy)."
  policy      = jsonencode(local.history_policy)
  tags        = var.tags
}

resource "aws_iam_policy" "eraser" {
  count = var.create_eraser_policy ? 1 : 0

  name        = "${local.iam_name_prefix}-eraser"
  path        = var.iam_path
  description = "Permanent erasure of every version of the sessions in s3://${var.bucket_name}/${var.prefix} (with the agent policy)."
  policy      = jsonencode(local.eraser_policy)
  tags        = var.tags
}
