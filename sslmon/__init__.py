"""sslmon: label-free monitoring of self-supervised encoders."""

from sslmon.errors import SslmonError

__version__ = "0.2.0"
__all__ = ["SslmonError", "__version__"]
