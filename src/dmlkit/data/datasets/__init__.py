"""One module per dataset layout; importing this package registers them all."""

from dmlkit.data.datasets import (  # noqa: F401
    cars196,
    csv_files,
    cub200,
    digits,
    folder,
    inshop,
    mnist,
    omniglot,
    sop,
)
