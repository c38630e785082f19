"""A PostgreSQL registry through real outages, on a private cluster (the shared server is never restarted).

* a server restart of 6 s in the middle of a workload of saves (threads on the sync facade, tasks on the
  async repository) ends with no failed save, and every save stored exactly once;
* a connection cut right after COMMIT (by a proxy in front of the cluster) is settled by reading the
  record back: the caller learns the truth, nothing is written twice;
* a wrong password, a missing role and a missing database fail at once with a clear message whose URL
  has its password masked.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from pg_cluster import CuttingProxy, PrivateCluster, private_cluster, server_bin_dir
from registry_support import pg_schema, sample

from conftest import require
from hikyuu_qlib.domain import errors
from hikyuu_qlib.domain.model import Model, ModelStatus
from hikyuu_qlib.registry import AsyncModelRepository, ModelRegistry, RegistryOptions

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = server_bin_dir()
    require(bin_dir is not None, "PostgreSQL server binaries (initdb, pg_ctl) not found: set HQ_TEST_PG_BIN")
    assert bin_dir is not None
    with private_cluster(bin_dir) as started:
        yield started


@pytest.fixture
def schema(cluster: PrivateCluster) -> Iterator[str]:
    with pg_schema(cluster.url()) as name:
        yield name


def _stored(url: str, schema: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
        return conn.execute("SELECT id, name, version FROM models").fetchall()  # type: ignore[return-value]


def test_a_server_restart_mid_workload_loses_no_save(cluster: PrivateCluster, schema: str) -> None:
    options = RegistryOptions(schema=schema, application_name="hq_restart", pool_size=4)
    saved: list[Model] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    def record(models: list[Model]) -> None:
        with lock:
            saved.extend(models)

    def sync_worker(registry: ModelRegistry, w: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                if i % 10 == 9:
                    record(registry.save_many([sample(f"sync-{w}", i * 10 + j) for j in range(5)]))
                else:
                    record([registry.save(sample(f"sync-{w}", i))])
            except BaseException as error:
                failures.append(error)
            i += 1

    async def async_workload() -> None:
        async with AsyncModelRepository(cluster.url(), options) as repo:

            async def worker(w: int) -> None:
                i = 0
                while not stop.is_set():
                    try:
                        if i % 10 == 9:
                            record(await repo.save_many([sample(f"async-{w}", i * 10 + j) for j in range(5)]))
                        else:
                            model = await repo.save(sample(f"async-{w}", i))
                            record([model])
                            assert (await repo.get(model.id)).id == model.id
                    except BaseException as error:
                        failures.append(error)
                    i += 1
                    await asyncio.sleep(0)

            await asyncio.gather(*(worker(w) for w in range(4)))

    with ModelRegistry(cluster.url(), options) as registry:
        threads = [threading.Thread(target=sync_worker, args=(registry, w)) for w in range(3)]

        def run_async() -> None:
            try:
                asyncio.run(async_workload())
            except BaseException as error:  # opening or closing the repository failed
                failures.append(error)

        threads.append(threading.Thread(target=run_async))
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            before = len(saved)
            cluster.restart(pause=6.0)  # pg_ctl stop -m fast, 6 s down, start
            restarted_at = len(saved)
            time.sleep(2.0)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert failures == [], f"{len(failures)} saves failed, first: {failures[0]!r}"
        assert before > 50, "the workload had not started before the restart: the test proved nothing"
        assert len(saved) > restarted_at, "no save finished after the restart"
        assert {m.name.split("-")[0] for m in saved} == {"sync", "async"}
        assert registry.count() == len(saved)

    rows = _stored(cluster.url(), schema)
    assert len(rows) == len(saved) == len({m.id for m in saved}), "a save was stored twice or lost"
    assert {r[0] for r in rows} == {m.id for m in saved}
    versions: dict[str, list[int]] = collections.defaultdict(list)
    for _, name, version in rows:
        versions[name].append(version)
    for name, got in versions.items():  # one version per save, no gap, no repeat
        assert sorted(got) == list(range(1, len(got) + 1)), name


# --------------------------------------------------------------------- a connection cut around COMMIT


@pytest.fixture
def proxy(cluster: PrivateCluster) -> Iterator[CuttingProxy]:
    with CuttingProxy(cluster.port) as cutting:
        yield cutting


def test_sync_commit_cut_after_commit_is_read_back(
    cluster: PrivateCluster, schema: str, proxy: CuttingProxy
) -> None:
    url = cluster.url(port=proxy.port)
    with ModelRegistry(url, RegistryOptions(schema=schema)) as registry:
        first = registry.save(sample("cut"))
        proxy.arm()  # the server commits the save, the client never hears so
        second = registry.save(sample("cut", 1))
        assert proxy.cuts == 1
        assert second.version == 2 and registry.get(second.id) == second

        proxy.arm()
        moved = registry.transition(first.id, "training")  # a retried compare-and-set would refuse
        assert proxy.cuts == 2
        assert moved.status is ModelStatus.TRAINING and registry.get(first.id) == moved

        proxy.arm()
        assert registry.delete(second.id) is True  # a retried delete would find nothing to delete
        assert proxy.cuts == 3

        proxy.arm(forward=False)  # the COMMIT never reaches the server: the save is lost, then redone
        third = registry.save(sample("cut", 2))
        assert proxy.cuts == 4
        assert third.version == 3 and registry.get(third.id) == third
    assert sorted((name, version) for _, name, version in _stored(cluster.url(), schema)) == [
        ("cut", 1),
        ("cut", 3),
    ]


async def test_async_commit_cut_after_commit_is_read_back(
    cluster: PrivateCluster, schema: str, proxy: CuttingProxy
) -> None:
    url = cluster.url(port=proxy.port)
    async with AsyncModelRepository(url, RegistryOptions(schema=schema)) as repo:
        first = await repo.save(sample("cut"))
        proxy.arm()
        second = await repo.save(sample("cut", 1))
        assert proxy.cuts == 1
        assert second.version == 2 and await repo.get(second.id) == second

        proxy.arm()
        moved = await repo.transition(first.id, "training")
        assert proxy.cuts == 2
        assert moved.status is ModelStatus.TRAINING and await repo.get(first.id) == moved

        proxy.arm()
        assert await repo.delete(second.id) is True
        assert proxy.cuts == 3

        proxy.arm()
        batch = await repo.save_many([sample("cut-many", i) for i in range(3)])
        assert proxy.cuts == 4
        assert [m.version for m in batch] == [1, 2, 3]

        proxy.arm(forward=False)
        third = await repo.save(sample("cut", 2))
        assert proxy.cuts == 5
        assert third.version == 3 and await repo.get(third.id) == third
    assert sorted((name, version) for _, name, version in _stored(cluster.url(), schema)) == [
        ("cut", 1),
        ("cut", 3),
        ("cut-many", 1),
        ("cut-many", 2),
        ("cut-many", 3),
    ]


# ------------------------------------------------------------------- refusals are not transient faults


def _refusals(cluster: PrivateCluster) -> list[tuple[str, type[errors.HQError], str]]:
    return [
        (
            cluster.url(user=cluster.PASSWORD_ROLE, password="wrong-pw", database="test"),
            errors.RegistryAccessError,
            "password authentication failed",
        ),
        (
            cluster.url(user=cluster.MISSING_ROLE, password="any-pw", database="test"),
            errors.RegistryAccessError,
            f'role "{cluster.MISSING_ROLE}" does not exist',
        ),
        (
            cluster.url(user="postgres", password="any-pw", database="no_such_db"),
            errors.RegistryNotFoundError,
            'database "no_such_db" does not exist',
        ),
    ]


def test_refusals_fail_at_once_with_a_clear_masked_message(cluster: PrivateCluster) -> None:
    options = RegistryOptions()  # the default deadline: 30 s
    for url, error, words in _refusals(cluster):
        password = url.split(":")[2].split("@")[0]
        masked = url.replace(f":{password}@", ":***@")
        started = time.monotonic()
        with pytest.raises(error) as sync_raised:
            ModelRegistry(url, options).open()

        async def open_async(u: str = url) -> None:
            async with AsyncModelRepository(u, options):
                pass

        with pytest.raises(error) as async_raised:
            asyncio.run(open_async())
        assert time.monotonic() - started < 10, f"{url}: retried as if it were transient"
        for raised in (sync_raised, async_raised):
            message = str(raised.value)
            assert words in message and masked in message, message
            assert password not in message
    right = cluster.url(user=cluster.PASSWORD_ROLE, password=cluster.PASSWORD, database="test")
    with ModelRegistry(right, options) as registry:  # the right password opens it
        assert registry.count() == 0


def test_an_outage_longer_than_the_deadline_fails_with_a_masked_url(cluster: PrivateCluster) -> None:
    from pg_cluster import free_port

    url = cluster.url(user="postgres", password="pw-in-url", port=free_port())  # nothing listens there
    options = RegistryOptions(retry_deadline=1.5)
    started = time.monotonic()
    with pytest.raises(errors.RegistryUnavailableError) as raised:
        ModelRegistry(url, options).open()
    waited = time.monotonic() - started
    assert 1.4 < waited < 10, waited
    message = str(raised.value)
    assert "postgres:***@127.0.0.1" in message and "pw-in-url" not in message
    assert "tries over" in message and "refused" in message.lower()
