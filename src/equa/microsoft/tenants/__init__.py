"""Multi-tenant mode (MS_AUTH_TENANT_ID=organizations): each organization connects its own Microsoft 365 tenant."""
