"""A checkout's ``from models import create_model, list_models``: the registry of
``vitprobe.models`` under the name the public API has always used (docs/LAYOUT.md)."""

from vitprobe.models import CNN_FAMILIES, ModelId, create_model, family, list_models

__all__ = ["CNN_FAMILIES", "ModelId", "create_model", "family", "list_models"]
