variable "bucket_name" {
  description = "Name of the session bucket the module creates."
  type        = string
}

variable "function_name" {
  description = "Name of the Lambda function (and of its role and log group)."
  type        = string
  default     = "agent-turn"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,56}$", var.function_name))
    error_message = "function_name must be 1-56 letters, digits, '-' or '_' (room is left for the role's suffix)."
  }
}

variable "package_path" {
  description = "The deployment package that build.sh makes."
  type        = string
  default     = "build/lambda.zip"
}

variable "runtime" {
  description = "Lambda runtime; build.sh's PYTHON_VERSION must match it."
  type        = string
  default     = "python3.12"
}

variable "reserved_concurrent_executions" {
  description = "Upper bound on concurrent invocations, so that a burst cannot exhaust the account's Lambda concurrency."
  type        = number
  default     = 10

  validation {
    condition     = var.reserved_concurrent_executions >= 1
    error_message = "reserved_concurrent_executions must be at least 1."
  }
}

variable "log_retention_days" {
  description = "How long the function's logs are kept."
  type        = number
  default     = 365
}
