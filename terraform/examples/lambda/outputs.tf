output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.agent.function_name
}

output "bucket_name" {
  description = "Name of the session bucket."
  value       = module.sessions.bucket_name
}

output "environment" {
  description = "The function's environment: the same variables let S3SessionStore.from_env() reach the bucket from anywhere else."
  value       = module.sessions.environment
}
