"""Routing: programs, enrollment with signed consent, signed route resolution, watch and diagnosis."""
