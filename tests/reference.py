"""Test-side access to the golden files (read from ../shared/golden, never copied into the project)."""
from mmadfer.testing import (  # noqa: F401
    GOLDEN, RecorderMeter, golden_inputs, manifest, recipe_tensor, reference_state_dict, save_reference_container,
)
