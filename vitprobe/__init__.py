"""vitprobe: train vision transformers and CNNs, then probe them (Park & Kim 2022)."""

__version__ = "0.1.0"

# In a checkout, the repo's models/ and studies/ are this package's vitprobe.models and
# vitprobe.studies (installed, they are copied there: pyproject's package-dir). Only those two
# names are mapped: the repo's other folders are not vitprobe's.
def _checkout_finder():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    names = {f"vitprobe.{d}": root / d for d in ("models", "studies")
             if (root / d / "__init__.py").is_file()}

    class CheckoutFinder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            folder = names.get(name)
            if folder is None:
                return None
            return importlib.util.spec_from_file_location(
                name, folder / "__init__.py", submodule_search_locations=[str(folder)])

    return CheckoutFinder if names else None


def _install_checkout_finder() -> None:
    import sys

    finder = _checkout_finder()
    if finder is not None and not any(getattr(f, "__name__", "") == "CheckoutFinder"
                                      for f in sys.meta_path):
        sys.meta_path.append(finder)


_install_checkout_finder()
