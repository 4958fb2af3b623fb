# Sourced by `make test`: points the PostgreSQL and Redis tests at the local servers when they answer.
# Tests that need a server skip with a reason when its variable is unset.
_probe() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
if [ -z "${EQUA_TEST_DATABASE_URL:-}" ]; then
  if _probe 127.0.0.1 5432; then
    export EQUA_TEST_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
  else
    echo "PostgreSQL does not answer on 127.0.0.1:5432: PostgreSQL tests will be skipped."
  fi
fi
if [ -z "${EQUA_TEST_REDIS_URL:-}" ]; then
  if _probe 127.0.0.1 6379; then
    export EQUA_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
  else
    echo "Redis does not answer on 127.0.0.1:6379: Redis tests will be skipped."
  fi
fi
