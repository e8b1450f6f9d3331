terraform {
  # strcontains() in the validations needs 1.5. The module's own tests
  # (tests/*.tftest.hcl) need 1.11, for mocked providers during plan.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The tests run against 5.100.0.
      version = ">= 5.40, < 7.0"
    }
  }
}
