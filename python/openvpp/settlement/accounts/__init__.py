"""The journal of credits, payments and redemptions, and statements read from it."""
