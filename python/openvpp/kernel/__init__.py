"""What every domain shares: the tenant policy."""
