"""Key and attribute names of the DynamoDB tables, shared by the stack, the local runtime and the code."""

# Read cache (reader): one item per order, expired by DynamoDB TTL on CACHE_EXPIRY_ATTRIBUTE.
CACHE_PARTITION_KEY = "order_id"
CACHE_ORDER_ATTRIBUTE = "order"
CACHE_EXPIRY_ATTRIBUTE = "expires_at"

# Idempotency (ingest): Powertools' DynamoDBPersistenceLayer defaults.
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_EXPIRY_ATTRIBUTE = "expiration"

# Producers (authorizer; `orderpipe producers`): one item per credential principal (an OAuth client's
# `sub`, or an IAM principal ARN) naming its producer, its state and its usage-plan API key.
PRODUCERS_PARTITION_KEY = "principal"
PRODUCERS_NAME_ATTRIBUTE = "producer"
PRODUCERS_STATUS_ATTRIBUTE = "status"  # "active" | "revoked"
PRODUCERS_USAGE_KEY_ATTRIBUTE = "usage_key"  # the API key value API Gateway meters (never a credential)
PRODUCER_ACTIVE = "active"
PRODUCER_REVOKED = "revoked"
