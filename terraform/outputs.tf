output "bucket_name" {
  description = "Name of the session bucket (S3SessionStore's `bucket`)."
  value       = aws_s3_bucket.sessions.id
}

output "bucket_arn" {
  description = "ARN of the session bucket."
  value       = aws_s3_bucket.sessions.arn
}

output "bucket_region" {
  description = "Region of the session bucket."
  value       = aws_s3_bucket.sessions.region
}

output "prefix" {
  description = "Key prefix of the sessions (S3SessionStore's `prefix`)."
  value       = var.prefix
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the sessions (created here unless passed in)."
  value       = local.kms_key_arn
}

output "agent_policy_arn" {
  description = "ARN of the agent policy: attach it to the role the agents run under."
  value       = aws_iam_policy.agent.arn
}

output "agent_policy_json" {
  description = "The agent policy's document, for inline use or review."
  value       = aws_iam_policy.agent.policy
}

output "history_policy_arn" {
  description = "ARN of the history policy (null when create_history_policy is false): history() and load(version_id=) alone; restore() together with the agent policy. Attach it to whoever reviews or restores old versions."
  value       = var.create_history_policy ? aws_iam_policy.history[0].arn : null
}

output "history_policy_json" {
  description = "The history policy's document (null when create_history_policy is false)."
  value       = var.create_history_policy ? aws_iam_policy.history[0].policy : null
}

output "eraser_policy_arn" {
  description = "ARN of the eraser policy (null unless create_eraser_policy)."
  value       = var.create_eraser_policy ? aws_iam_policy.eraser[0].arn : null
}

output "eraser_policy_json" {
  description = "The eraser policy's document (null unless create_eraser_policy)."
  value       = var.create_eraser_policy ? aws_iam_policy.eraser[0].policy : null
}

output "tls_policy_json" {
  description = "The TLS-only bucket policy document; attached unless enforce_tls is false."
  value       = jsonencode(local.tls_policy)
}

output "environment" {
  description = "Environment variables from which S3SessionStore.from_env() finds its bucket: pass them to the agents' runtime (e.g. a Lambda function's environment)."
  value = {
    S3STORE_BUCKET     = aws_s3_bucket.sessions.id
    S3STORE_PREFIX     = var.prefix
    S3STORE_KMS_KEY_ID = local.kms_key_arn
  }
}
