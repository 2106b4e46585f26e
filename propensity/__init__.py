"""propensity: find Product Qualified Leads from product event logs.

The public API is small on purpose; the CLI (`propensity --help`) is the main entry point.
"""

from propensity.config import Config, load_config
from propensity.errors import PropensityError

__all__ = ["Config", "PropensityError", "__version__", "load_config"]
__version__ = "0.1.0"
