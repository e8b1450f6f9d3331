# The module's security properties, asserted on the plan with a mocked AWS provider:
# no credentials, no network, a few seconds. The policies are built from inputs, so
# their JSON is known at plan time and checked here statement by statement.

mock_provider "aws" {
  # Computed attributes take these values already during plan, so that ARNs and
  # the bucket's region are known to the assertions.
  override_during = plan

  mock_data "aws_partition" {
    defaults = {
      partition  = "aws"
      dns_suffix = "amazonaws.com"
    }
  }

  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "111122223333"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      id     = "acme-agent-sessions"
      arn    = "arn:aws:s3:::acme-agent-sessions"
      region = "eu-west-1"
    }
  }

  mock_resource "aws_iam_policy" {
    defaults = {
      arn = "arn:aws:iam::111122223333:policy/mocked"
    }
  }
}

variables {
  bucket_name = "acme-agent-sessions"
}

run "bucket_is_versioned_encrypted_private_and_owner_enforced" {
  command = plan

  assert {
    condition     = aws_s3_bucket_versioning.sessions.versioning_configuration[0].status == "Enabled"
    error_message = "versioning must be Enabled, so that overwritten and deleted sessions can be recovered"
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.sessions.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms"
    error_message = "default encryption must be SSE-KMS"
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.sessions.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
    error_message = "default encryption must use the module's own key when none is passed in"
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.sessions.rule).bucket_key_enabled == true
    error_message = "the S3 bucket key must be enabled"
  }

  assert {
    condition     = length(aws_kms_key.sessions) == 1 && aws_kms_key.sessions[0].enable_key_rotation == true
    error_message = "without kms_key_arn the module must create one customer key, with rotation"
  }

  assert {
    condition = jsondecode(aws_kms_key.sessions[0].policy).Statement == [{
      Sid       = "EnableIAMPolicies"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::111122223333:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
    error_message = "the key policy must only delegate to the account's IAM policies"
  }

  assert {
    condition = (
      aws_s3_bucket_public_access_block.sessions.block_public_acls == true
      && aws_s3_bucket_public_access_block.sessions.block_public_policy == true
      && aws_s3_bucket_public_access_block.sessions.ignore_public_acls == true
      && aws_s3_bucket_public_access_block.sessions.restrict_public_buckets == true
    )
    error_message = "all four public access blocks must be on"
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.sessions.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "object ownership must be BucketOwnerEnforced (ACLs disabled)"
  }

  assert {
    condition     = aws_s3_bucket.sessions.force_destroy == false
    error_message = "the bucket must not be force-destroyed by default: sessions are data"
  }
}

run "bucket_policy_denies_requests_without_tls_1_2" {
  command = plan

  assert {
    condition     = length(aws_s3_bucket_policy.tls) == 1
    error_message = "the TLS bucket policy must be attached by default"
  }

  assert {
    condition = jsondecode(aws_s3_bucket_policy.tls[0].policy).Statement == [
      {
        Sid       = "DenyWithoutTLS"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = ["arn:aws:s3:::acme-agent-sessions", "arn:aws:s3:::acme-agent-sessions/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyBelowTLS12"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = ["arn:aws:s3:::acme-agent-sessions", "arn:aws:s3:::acme-agent-sessions/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
    error_message = "the bucket policy must deny every principal any S3 action on the bucket and its objects without TLS, or below TLS 1.2"
  }

  assert {
    condition     = output.tls_policy_json == aws_s3_bucket_policy.tls[0].policy
    error_message = "tls_policy_json must be the attached document"
  }
}

run "agent_policy_grants_exactly_the_session_prefix" {
  command = plan

  assert {
    # Compared as JSON: sort() gives a list and a literal a tuple, which `==` tells apart.
    condition = jsonencode([
      for s in jsondecode(aws_iam_policy.agent.policy).Statement : {
        effect   = s.Effect
        actions  = sort(s.Action)
        resource = s.Resource
      }
      ]) == jsonencode([
      { effect = "Allow", actions = ["s3:ListBucket"], resource = ["arn:aws:s3:::acme-agent-sessions"] },
      { effect = "Allow", actions = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], resource = ["arn:aws:s3:::acme-agent-sessions/sessions/*"] },
      { effect = "Allow", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resource = ["arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"] },
    ])
    error_message = "the agent policy must grant exactly ListBucket on the bucket, Get/Put/DeleteObject on the prefix, and GenerateDataKey/Decrypt on the key"
  }

  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_policy.agent.policy).Statement : [
        for r in s.Resource : r != "*" && !endswith(r, ":*") && !endswith(r, ":::*") && (!strcontains(r, "*") || r == "arn:aws:s3:::acme-agent-sessions/sessions/*")
      ]
    ]))
    error_message = "no agent resource may be a wildcard; the only '*' allowed is the one that ends the session prefix"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_policy.agent.policy).Statement :
      length(setintersection(keys(s), ["NotAction", "NotResource", "NotPrincipal"])) == 0
    ])
    error_message = "the agent policy must not use NotAction, NotResource or NotPrincipal"
  }

  assert {
    condition     = jsondecode(aws_iam_policy.agent.policy).Statement[0].Condition == { StringLike = { "s3:prefix" = ["sessions/*"] } }
    error_message = "listing must be limited to the session prefix by an s3:prefix condition"
  }

  assert {
    condition = jsondecode(aws_iam_policy.agent.policy).Statement[2].Condition == {
      StringEquals = { "kms:ViaService" = "s3.eu-west-1.amazonaws.com" }
      StringLike   = { "kms:EncryptionContext:aws:s3:arn" = ["arn:aws:s3:::acme-agent-sessions", "arn:aws:s3:::acme-agent-sessions/sessions/*"] }
    }
    error_message = "the key may only be used through S3 in the bucket's region, for this bucket"
  }

  assert {
    condition     = output.agent_policy_json == aws_iam_policy.agent.policy
    error_message = "agent_policy_json must be the created policy's document"
  }

  assert {
    condition     = length(aws_iam_policy.eraser) == 0 && output.eraser_policy_arn == null
    error_message = "the eraser policy must be opt-in"
  }
}

run "history_policy_reads_every_version_and_deletes_nothing" {
  command = plan

  assert {
    condition     = length(aws_iam_policy.history) == 1 && output.history_policy_arn == aws_iam_policy.history[0].arn
    error_message = "the history policy must be created by default (restore() is documented, and needs it)"
  }

  assert {
    condition = [
      for s in jsondecode(aws_iam_policy.history[0].policy).Statement : {
        effect    = s.Effect
        actions   = s.Action
        resource  = s.Resource
        condition = try(s.Condition, null)
      }
      ] == [
      {
        effect    = "Allow"
        actions   = ["s3:ListBucketVersions"]
        resource  = ["arn:aws:s3:::acme-agent-sessions"]
        condition = { StringLike = { "s3:prefix" = ["sessions/*"] } }
      },
      {
        effect    = "Allow"
        actions   = ["s3:GetObjectVersion"]
        resource  = ["arn:aws:s3:::acme-agent-sessions/sessions/*"]
        condition = null
      },
      {
        effect   = "Allow"
        actions  = ["kms:Decrypt"]
        resource = ["arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"]
        condition = {
          StringEquals = { "kms:ViaService" = "s3.eu-west-1.amazonaws.com" }
          StringLike   = { "kms:EncryptionContext:aws:s3:arn" = ["arn:aws:s3:::acme-agent-sessions", "arn:aws:s3:::acme-agent-sessions/sessions/*"] }
        }
      },
    ]
    error_message = "the history policy must grant exactly ListBucketVersions (prefix-limited), GetObjectVersion on the prefix, and Decrypt of the key through S3 for this bucket"
  }

  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_policy.history[0].policy).Statement : [
        for a in s.Action : !strcontains(lower(a), "delete") && !strcontains(lower(a), "put") && !strcontains(a, "*")
      ]
    ]))
    error_message = "the history policy must not grant any delete or write, nor a wildcard action"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_policy.history[0].policy).Statement :
      length(setintersection(keys(s), ["NotAction", "NotResource", "NotPrincipal"])) == 0
    ])
    error_message = "the history policy must not use NotAction, NotResource or NotPrincipal"
  }

  assert {
    condition     = output.history_policy_json == aws_iam_policy.history[0].policy
    error_message = "history_policy_json must be the created policy's document"
  }

  assert {
    condition     = aws_iam_policy.history[0].name == "acme-agent-sessions-history"
    error_message = "the history policy must be named <iam_name_prefix>-history"
  }
}

run "history_policy_can_be_left_out" {
  command = plan

  variables {
    create_history_policy = false
  }

  assert {
    condition     = length(aws_iam_policy.history) == 0 && output.history_policy_arn == null && output.history_policy_json == null
    error_message = "create_history_policy = false must leave the history policy out"
  }
}

run "lifecycle_rules" {
  command = plan

  assert {
    condition = [for r in aws_s3_bucket_lifecycle_configuration.sessions.rule : r.id] == [
      "abort-incomplete-multipart-uploads",
      "expire-noncurrent-versions",
      "remove-expired-delete-markers",
    ]
    error_message = "by default: abort multipart uploads, expire noncurrent versions, remove expired delete markers, and keep current sessions"
  }

  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.sessions.rule : r.status == "Enabled"])
    error_message = "every lifecycle rule must be enabled"
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.sessions.rule[0].abort_incomplete_multipart_upload[0].days_after_initiation == 7
    error_message = "incomplete multipart uploads must be aborted after 7 days by default"
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.sessions.rule[1].noncurrent_version_expiration[0].noncurrent_days == 30
    error_message = "noncurrent versions must expire after 30 days by default"
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.sessions.rule[2].expiration[0].expired_object_delete_marker == true
    error_message = "expired delete markers must be removed"
  }
}

run "environment_output_configures_the_store" {
  command = plan

  assert {
    condition = output.environment == {
      S3STORE_BUCKET     = "acme-agent-sessions"
      S3STORE_PREFIX     = "sessions/"
      S3STORE_KMS_KEY_ID = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
    }
    error_message = "environment must hold the variables S3SessionStore.from_env() reads"
  }
}

run "session_expiry_eraser_and_custom_prefix" {
  command = plan

  variables {
    prefix                             = "tenants/acme/"
    session_expiration_days            = 90
    noncurrent_version_expiration_days = 14
    create_eraser_policy               = true
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.sessions.rule[3].id == "expire-sessions"
    error_message = "session_expiration_days must add the expire-sessions rule"
  }

  assert {
    condition = (
      aws_s3_bucket_lifecycle_configuration.sessions.rule[3].filter[0].prefix == "tenants/acme/"
      && aws_s3_bucket_lifecycle_configuration.sessions.rule[3].expiration[0].days == 90
    )
    error_message = "sessions must expire under the session prefix only, after session_expiration_days"
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.sessions.rule[1].noncurrent_version_expiration[0].noncurrent_days == 14
    error_message = "noncurrent_version_expiration_days must be honoured"
  }

  assert {
    condition     = jsondecode(aws_iam_policy.agent.policy).Statement[1].Resource == ["arn:aws:s3:::acme-agent-sessions/tenants/acme/*"]
    error_message = "object access must follow the prefix"
  }

  assert {
    condition     = jsondecode(aws_iam_policy.agent.policy).Statement[0].Condition.StringLike["s3:prefix"] == ["tenants/acme/*"]
    error_message = "listing must follow the prefix"
  }

  assert {
    condition = [
      for s in jsondecode(aws_iam_policy.eraser[0].policy).Statement : {
        effect    = s.Effect
        actions   = s.Action
        resource  = s.Resource
        condition = try(s.Condition, null)
      }
      ] == [
      {
        effect    = "Allow"
        actions   = ["s3:ListBucketVersions"]
        resource  = ["arn:aws:s3:::acme-agent-sessions"]
        condition = { StringLike = { "s3:prefix" = ["tenants/acme/*"] } }
      },
      {
        effect    = "Allow"
        actions   = ["s3:DeleteObjectVersion"]
        resource  = ["arn:aws:s3:::acme-agent-sessions/tenants/acme/*"]
        condition = null
      },
    ]
    error_message = "the eraser policy must add exactly ListBucketVersions (prefix-limited) and DeleteObjectVersion on the prefix"
  }

  assert {
    condition = (
      jsondecode(aws_iam_policy.history[0].policy).Statement[0].Condition.StringLike["s3:prefix"] == ["tenants/acme/*"]
      && jsondecode(aws_iam_policy.history[0].policy).Statement[1].Resource == ["arn:aws:s3:::acme-agent-sessions/tenants/acme/*"]
    )
    error_message = "the history policy must follow the prefix"
  }

  assert {
    condition     = output.environment.S3STORE_PREFIX == "tenants/acme/"
    error_message = "environment must carry the prefix"
  }
}

run "own_kms_key" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
  }

  assert {
    condition     = length(aws_kms_key.sessions) == 0
    error_message = "no key must be created when one is passed in"
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.sessions.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == var.kms_key_arn
    error_message = "default encryption must use the key passed in"
  }

  assert {
    condition     = jsondecode(aws_iam_policy.agent.policy).Statement[2].Resource == [var.kms_key_arn]
    error_message = "the agent's KMS grant must name the key passed in"
  }

  assert {
    condition     = jsondecode(aws_iam_policy.history[0].policy).Statement[2].Resource == [var.kms_key_arn]
    error_message = "the history policy's KMS grant must name the key passed in"
  }

  assert {
    condition     = output.kms_key_arn == var.kms_key_arn && output.environment.S3STORE_KMS_KEY_ID == var.kms_key_arn
    error_message = "the outputs must name the key passed in"
  }
}

run "tls_policy_can_be_switched_off_for_emulators" {
  command = plan

  variables {
    enforce_tls = false
  }

  assert {
    condition     = length(aws_s3_bucket_policy.tls) == 0
    error_message = "enforce_tls = false must leave the bucket policy out"
  }
}

run "rejects_a_prefix_without_trailing_slash" {
  command = plan

  variables {
    prefix = "sessions"
  }

  expect_failures = [var.prefix]
}

run "rejects_an_empty_prefix" {
  command = plan

  variables {
    prefix = ""
  }

  expect_failures = [var.prefix]
}

run "rejects_a_wildcard_in_the_prefix" {
  command = plan

  variables {
    prefix = "sessions*/"
  }

  expect_failures = [var.prefix]
}

run "rejects_a_leading_slash" {
  command = plan

  variables {
    prefix = "/sessions/"
  }

  expect_failures = [var.prefix]
}

run "rejects_an_invalid_bucket_name" {
  command = plan

  variables {
    bucket_name = "Agent_Sessions"
  }

  expect_failures = [var.bucket_name]
}

run "rejects_a_key_alias" {
  command = plan

  variables {
    kms_key_arn = "alias/sessions"
  }

  expect_failures = [var.kms_key_arn]
}

run "rejects_a_zero_day_retention" {
  command = plan

  variables {
    noncurrent_version_expiration_days = 0
  }

  expect_failures = [var.noncurrent_version_expiration_days]
}
