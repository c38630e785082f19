"""hikyuu-qlib: one research platform over Hikyuu and Qlib market data stores."""

__version__ = "0.1.0"
