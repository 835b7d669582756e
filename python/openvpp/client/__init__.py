"""Client-side helpers shared by the CLI, the demo and integrators."""
