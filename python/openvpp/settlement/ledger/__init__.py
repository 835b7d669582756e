"""The journal of credits, payments and redemptions, and the statements read from it."""
