variable "bucket_name" {
  description = "Name of the session bucket to create. S3 bucket names are global: include something unique to your account."
  type        = string

  validation {
    condition = alltrue([
      length(var.bucket_name) >= 3,
      length(var.bucket_name) <= 63,
      can(regex("^[a-z0-9][a-z0-9.-]*[a-z0-9]$", var.bucket_name)),
      !strcontains(var.bucket_name, ".."),
      !can(regex("^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$", var.bucket_name)),
      !startswith(var.bucket_name, "xn--"),
      !startswith(var.bucket_name, "sthree-"),
      !endswith(var.bucket_name, "-s3alias"),
      !endswith(var.bucket_name, "--ol-s3"),
    ])
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit, no '..', not an IP address, and none of the reserved prefixes (xn--, sthree-) or suffixes (-s3alias, --ol-s3)."
  }
}

variable "prefix" {
  description = "Key prefix the sessions live under (S3SessionStore's `prefix`). The agent policy grants access to this prefix only."
  type        = string
  default     = "sessions/"

  validation {
    # Non-empty, so that the agent policy never covers the whole bucket; no IAM
    # wildcards or policy variables, so that the policy means exactly this prefix.
    condition     = can(regex("^[^/*?$]([^*?$]*)/$", var.prefix)) && !strcontains(var.prefix, "//")
    error_message = "prefix must be non-empty, end with '/', not start with '/', contain no '//', and contain none of '*', '?' or '$' (they are wildcards or variables in IAM policies). Example: \"sessions/\"."
  }

  validation {
    condition     = length(var.prefix) <= 512
    error_message = "prefix must be at most 512 characters: S3 keys are limited to 1,024 bytes and the session id needs room too."
  }
}

variable "kms_key_arn" {
  description = "ARN of an existing KMS key to encrypt sessions with. When null, the module creates a customer-managed key with automatic rotation."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<id>); aliases are not accepted because IAM grants need the key's ARN."
  }
}

variable "kms_key_deletion_window_in_days" {
  description = "Waiting period before the module's own KMS key is deleted once scheduled for deletion."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_in_days >= 7 && var.kms_key_deletion_window_in_days <= 30 && floor(var.kms_key_deletion_window_in_days) == var.kms_key_deletion_window_in_days
    error_message = "kms_key_deletion_window_in_days must be a whole number from 7 to 30 (KMS's limits)."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted session version stays recoverable before S3 expires it."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of at least 1."
  }
}

variable "session_expiration_days" {
  description = "When set, sessions under the prefix expire this many days after their last save (their versions then follow noncurrent_version_expiration_days). Null keeps sessions until deleted."
  type        = number
  default     = null

  validation {
    condition     = var.session_expiration_days == null || try(var.session_expiration_days >= 1 && floor(var.session_expiration_days) == var.session_expiration_days, false)
    error_message = "session_expiration_days must be null or a whole number of at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which S3 aborts an unfinished multipart upload and frees its parts."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of at least 1."
  }
}

variable "create_history_policy" {
  description = "Also create the history policy: listing and reading every version of a session (S3SessionStore.history() and load(version_id=)), and, with the agent policy, restore(). It deletes nothing; a policy grants nothing until attached."
  type        = bool
  default     = true
}

variable "create_eraser_policy" {
  description = "Also create the eraser policy: what S3SessionStore.purge() needs to erase every version of a session. Give it to an operator role, not to agents."
  type        = bool
  default     = false
}

variable "enforce_tls" {
  description = "Attach the bucket policy that denies requests without TLS or below TLS 1.2. Leave on: turn it off only for S3 emulators (such as moto) that cannot evaluate aws:SecureTransport and would refuse every request."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with every session in it. Off by default: sessions are data."
  type        = bool
  default     = false
}

variable "iam_name_prefix" {
  description = "Prefix of the IAM policy names (<prefix>-agent, <prefix>-history, <prefix>-eraser). Defaults to the bucket name."
  type        = string
  default     = null

  validation {
    condition     = var.iam_name_prefix == null || can(regex("^[A-Za-z0-9+=,.@_-]{1,100}$", var.iam_name_prefix))
    error_message = "iam_name_prefix must be 1-100 characters of letters, digits and +=,.@_- (IAM policy name rules)."
  }
}

variable "iam_path" {
  description = "IAM path of the policies."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([\\x21-\\x7e]*/)?$", var.iam_path)) && length(var.iam_path) <= 512
    error_message = "iam_path must start and end with '/' (for example \"/\" or \"/agents/\")."
  }
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
  default     = {}
}
