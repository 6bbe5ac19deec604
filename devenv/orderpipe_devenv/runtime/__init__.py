"""The whole pipeline on one machine: real handlers behind an API Gateway emulator (`gateway`) and
an SQS event-source emulator (`event_source`), each function a pool of worker processes like Lambda
execution environments (`lambda_pool`), composed by `pipeline.LocalRuntime`."""
