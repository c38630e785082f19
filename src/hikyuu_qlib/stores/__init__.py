"""Market data adapters: Hikyuu (HDF5 + stock.db), Qlib (bin), TDX (.day), synthetic."""
