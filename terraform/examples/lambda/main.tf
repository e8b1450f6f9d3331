# An agent turn as a Lambda function: the role holds the module's agent policy and
# nothing else on S3, and the function's environment is the module's `environment`
# output, from which handler.py's S3SessionStore.from_env() finds the bucket.

module "sessions" {
  source = "../.."

  bucket_name = var.bucket_name
}

data "aws_iam_policy_document" "assume_by_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "agent" {
  name               = "${var.function_name}-role"
  assume_role_policy = data.aws_iam_policy_document.assume_by_lambda.json
}

resource "aws_iam_role_policy_attachment" "sessions" {
  role       = aws_iam_role.agent.name
  policy_arn = module.sessions.agent_policy_arn
}

resource "aws_cloudwatch_log_group" "agent" {
  #checkov:skip=CKV_AWS_158:The log group holds the function's own log lines, not sessions; CloudWatch encrypts them at rest already. Pass a KMS key here if your logs carry personal data.
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.agent.arn}:*"]
  }
}

resource "aws_iam_role_policy" "logs" {
  name   = "write-own-logs"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.logs.json
}

data "aws_iam_policy" "xray" {
  name = "AWSXRayDaemonWriteAccess"
}

resource "aws_iam_role_policy_attachment" "xray" {
  role       = aws_iam_role.agent.name
  policy_arn = data.aws_iam_policy.xray.arn
}

resource "aws_lambda_function" "agent" {
  #checkov:skip=CKV_AWS_116:A turn is invoked synchronously and its caller sees the error; there is no asynchronous event to keep in a dead-letter queue.
  #checkov:skip=CKV_AWS_117:The function only talks to S3 over its public endpoint with TLS; a VPC would need NAT or a gateway endpoint and is the user's network decision.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile in AWS Signer, which an example cannot assume exists.
  #checkov:skip=CKV_AWS_173:The environment holds only the bucket name, prefix and key ARN, no secrets; Lambda encrypts it at rest with its service key.
  function_name                  = var.function_name
  role                           = aws_iam_role.agent.arn
  runtime                        = var.runtime
  handler                        = "handler.handler"
  filename                       = var.package_path
  source_code_hash               = filebase64sha256(var.package_path)
  timeout                        = 30
  memory_size                    = 256
  reserved_concurrent_executions = var.reserved_concurrent_executions

  environment {
    variables = module.sessions.environment
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.agent, aws_iam_role_policy.logs]
}
