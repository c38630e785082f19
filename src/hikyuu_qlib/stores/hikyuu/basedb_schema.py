"""DDL and reference rows of a Hikyuu ``stock.db`` as the writer creates it."""

from __future__ import annotations

from hikyuu_qlib.domain import Market

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS "Market" (
        "marketid" INTEGER, "market" VARCHAR(10), "name" VARCHAR(60), "description" VARCHAR(100),
        "code" VARCHAR(20), "lastDate" INTEGER, "openTime1" INTEGER, "closeTime1" INTEGER,
        "openTime2" INTEGER, "closeTime2" INTEGER, PRIMARY KEY("marketid"))""",
    """CREATE TABLE IF NOT EXISTS Stock (stockid INTEGER PRIMARY KEY, marketid INTEGER, code VARCHAR(20),
        name VARCHAR(60), type INTEGER, valid INTEGER, startDate INTEGER, endDate INTEGER)""",
    """CREATE TABLE IF NOT EXISTS "StockTypeInfo" (
        "tickValue" NUMERIC, "precision" INTEGER, "id" INTEGER, "type" INTEGER, "description" VARCHAR(100),
        "tick" NUMERIC, "minTradeNumber" NUMERIC, "maxTradeNumber" NUMERIC, PRIMARY KEY("id"))""",
    """CREATE TABLE IF NOT EXISTS "stkWeight" (
        "id" INTEGER NOT NULL, "stockid" INTEGER, "date" INTEGER, "countAsGift" INTEGER,
        "countForSell" INTEGER, "priceForSell" INTEGER, "bonus" INTEGER, "countOfIncreasement" INTEGER,
        "totalCount" INTEGER, "freeCount" INTEGER, "suogu" NUMERIC, PRIMARY KEY("id"),
        FOREIGN KEY("stockid") REFERENCES "Stock"("stockid"))""",
    'CREATE INDEX IF NOT EXISTS "ix_stkWeight_stockid" ON "stkWeight" ("stockid")',
    'CREATE INDEX IF NOT EXISTS "index_stkWeight" ON "stkWeight" ("stockid", "date")',
    'CREATE INDEX IF NOT EXISTS "ix_stock_market_code" ON "Stock" ("marketid", "code")',
)

MARKET_IDS: dict[Market, int] = {Market.SH: 1, Market.SZ: 2, Market.BJ: 3}

# marketid, market, name, description, code (market index), lastDate, session times
MARKET_ROWS: tuple[tuple[int, str, str, str, str, int, int, int, int, int], ...] = (
    (1, "SH", "上海证券交易所", "上海市场", "000001", 0, 930, 1130, 1300, 1500),
    (2, "SZ", "深圳证券交易所", "深圳市场", "399001", 0, 930, 1130, 1300, 1500),
    (3, "BJ", "北京证券交易所", "北京市场", "899050", 0, 930, 1130, 1300, 1500),
)

# tickValue, precision, id, type, description, tick, minTradeNumber, maxTradeNumber
STOCK_TYPE_ROWS: tuple[tuple[float, int, int, int, str, float, int, int], ...] = (
    (100.0, 2, 0, 0, "Block", 100.0, 100, 1000000),
    (0.01, 2, 1, 1, "A股", 0.01, 100, 1000000),
    (0.001, 3, 2, 2, "指数", 0.001, 1, 1000000),
    (0.001, 3, 3, 3, "B股", 0.001, 100, 1000000),
    (0.001, 3, 4, 4, "基金（不含ETF）", 0.001, 100, 1000000),
    (0.001, 3, 5, 5, "ETF", 0.001, 1000, 1000000),
    (0.01, 2, 6, 6, "国债", 0.01, 10, 10000),
    (0.01, 2, 7, 7, "其他债券", 0.01, 10, 10000),
    (0.01, 2, 8, 8, "创业板", 0.01, 100, 1000000),
    (0.01, 2, 9, 9, "科创板", 0.01, 200, 1000000),
)
