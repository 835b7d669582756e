"""`openvpp demo`: the main job on the embedded defaults."""

from openvpp.demo.scenario import run

__all__ = ["run"]
