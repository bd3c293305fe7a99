"""Open the asyncio Redis client: `REDIS_URL` as given, or the embedded server's.

`REDIS_URL` names one server, or one node of a Redis Cluster: Cascade asks the node
(`INFO cluster`) and, on a cluster, opens redis-py's cluster client, which finds the other
nodes from that one. Every key of a service shares the hash tag `{service}` (`app.storage.keys`),
so each script and transaction touches one slot; a key shared by every service (the global
pause, the data-loss flag) is read and written by commands of its own.

Commands are packed by hiredis, in C: redis-py's asyncio connection does so itself
from 8.2 on (before, Cascade swapped in a connection class of its own for it).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

log = logging.getLogger(__name__)

Client = redis.Redis | RedisCluster  # one server, or a cluster through one of its nodes
Pipe = Pipeline | ClusterPipeline  # a pipeline of either

# What Redis away raises, a cluster not serving every slot included: redis-py's cluster
# errors (slots not covered, no node reachable) are not RedisErrors.
UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)  # not OSError

SLOTS = 16_384  # a Redis Cluster's hash slots
EXPLAIN_SECONDS = 2.0  # how long `/readyz` waits for a node to say what is wrong

URL_FORM = (
    "write REDIS_URL as redis://[:password@]host:port[/db], or rediss://… for TLS: one server,"
    " or any one node of a Redis Cluster (Cascade finds the others)"
)

ONE_DATABASE = (
    "REDIS_URL is a node of a Redis Cluster, which has one database: write /0 at its end,"
    " or nothing"
)


class UnsupportedRedis(Exception):
    """`REDIS_URL` names something Cascade cannot keep its data on; the message says what to
    do and never repeats the URL, which holds the password."""


def connect(url: str) -> "redis.Redis":
    """A client of the one server `url` names; `rediss://` accepts Heroku Redis's
    self-signed certificate."""
    try:
        several = "," in urlsplit(url).netloc  # a seed list, as other cluster clients take
        if not several:
            return redis.Redis.from_url(url, **_options(url))
    except ValueError:  # a bad port or scheme: its text may quote the URL
        several = False
    what = "names several servers" if several else "is not the URL of one Redis server"
    raise UnsupportedRedis(f"REDIS_URL {what}. {URL_FORM}")


async def open_client(url: str) -> Client:
    """The client `url` needs: the cluster client when the server says it is a cluster node.

    A server that does not answer is taken for one server, as Heroku Redis is: `/readyz`
    says it is unreachable meanwhile, and a cluster node taken so answers MOVED, which
    `/readyz` tells apart (a restart then opens the cluster client).
    """
    connect(url)  # refuses what is no server's URL before anything is sent
    try:
        clustered = await is_cluster_node(url)
    except UNAVAILABLE as error:
        log.warning("redis did not answer at start (%s): taken for one server", _name(error))
        clustered = False
    return connect_cluster(url) if clustered else connect(url)


def connect_cluster(url: str) -> RedisCluster:
    """The cluster client, started from the one node `url` names (it connects on first use)."""
    try:
        return RedisCluster.from_url(url, **_options(url))
    except (ValueError, RedisClusterException):  # a db other than 0: a cluster has only one
        raise UnsupportedRedis(ONE_DATABASE) from None


def _on_database_0(url: str) -> "redis.Redis":
    """A client of the server `url` names, on database 0: a cluster node refuses any other
    (to SELECT it), yet says what it is."""
    client = connect(url)
    client.connection_pool.connection_kwargs["db"] = 0
    return client


async def is_cluster_node(url: str) -> bool:
    """Whether the server `url` names is a node of a Redis Cluster (`INFO cluster`). Raises
    what an unreachable server raises."""
    node = _on_database_0(url)
    try:
        info = await node.info("cluster")
    finally:
        await node.aclose()
    return bool(int(info.get("cluster_enabled", 0)))


async def cluster_problem(url: str) -> str | None:
    """Why the Redis Cluster whose node `url` names cannot serve Cascade, as that node sees
    it (CLUSTER INFO): None when it can, or when `url` is no cluster node. A cluster whose
    slots are not all served refuses every command of the cluster client, so this asks the
    node alone. Raises what an unreachable node raises."""
    node = _on_database_0(url)
    try:
        if not int((await node.info("cluster")).get("cluster_enabled", 0)):
            return None
        info = await node.cluster("INFO")
    finally:
        await node.aclose()
    state = info.get("cluster_state")
    assigned, ok = int(info.get("cluster_slots_assigned", 0)), int(info.get("cluster_slots_ok", 0))
    if state == "ok":
        return None
    if assigned < SLOTS:
        return (
            f"a Redis Cluster that does not serve every slot (cluster_state:{state}, {assigned}"
            f" of {SLOTS} slots assigned): give each slot a master (valkey-cli --cluster fix,"
            " or CLUSTER ADDSLOTSRANGE on each node), then restart Cascade"
        )
    return (
        f"a Redis Cluster that does not serve every slot (cluster_state:{state}, {SLOTS - ok}"
        f" of {SLOTS} slots on failing masters): bring them back or fail over to a replica"
    )


async def explain(url: str | None, client: Client, error: Exception) -> str:
    """What a command that failed with `error` says of REDIS_URL (`url`; None: the embedded
    server): unreachable, a cluster not serving every slot, or a cluster node taken for one
    server (it did not answer when Cascade started). For `/readyz`; never the URL."""
    why = f"Redis unreachable: {_name(error)}"
    if url is None:
        return why
    try:
        problem = await asyncio.wait_for(cluster_problem(url), EXPLAIN_SECONDS)
    except UNAVAILABLE:  # TimeoutError is an OSError
        return why
    if problem is not None:
        return f"REDIS_URL is a node of {problem}"
    if isinstance(error, AskError) and not on_cluster(client):  # MOVED or ASK
        return (
            "REDIS_URL is a node of a Redis Cluster that Cascade took for one server, as it"
            " did not answer when Cascade started: restart Cascade"
        )
    return why


def on_cluster(client: Client | Pipe) -> bool:
    return isinstance(client, RedisCluster | ClusterPipeline)


def node_name(client: Client, key: str) -> str:
    """The node that holds `key` ("" on one server)."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        return node.name if node is not None else ""
    return ""


async def replication(client: Client) -> dict[str, dict[str, Any]]:
    """INFO replication of each master, by node (`node_name`)."""
    if isinstance(client, RedisCluster):
        masters = client.get_primaries()
        infos = await asyncio.gather(
            *(client.info("replication", target_nodes=node) for node in masters)
        )
        return {node.name: info for node, info in zip(masters, infos, strict=True)}
    return {"": await client.info("replication")}


@asynccontextmanager
async def one_connection(client: Client, key: str) -> AsyncIterator[Connection]:
    """A connection of its own to the server that holds `key` (a cluster's node).

    WAIT and WAITAOF wait for what their own connection wrote: a command of the client may
    go out on any connection of its pool (a cluster node's turns them round). A pipeline
    keeps one, but a WAITAOF sent with the write waits for the next fsync (~0.1 s with
    `appendfsync everysec`), where one sent after its reply finds the write's done already.
    """
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        if node is None:  # the client has not learnt the cluster's slots yet
            await client.initialize()
            node = client.get_node_from_key(key)
        assert node is not None
        connection = node.acquire_connection()
        try:
            yield connection
        except BaseException:
            await connection.disconnect()  # a reply may still be on its way
            raise
        finally:
            node.release(connection)
        return
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        yield connection
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


async def send(connection: Connection, *commands: Sequence[Any]) -> list[Any]:
    """`commands` at once on `connection`, and their replies, an error reply as its value."""
    await connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except ResponseError as error:
            replies.append(error)
    return replies


def mget(pipe: Pipe, keys: Sequence[str]) -> None:
    """Queue MGET of `keys`, which share one slot (one service's, one repository's).

    redis-py's cluster pipeline refuses its `mget` method, whose keys could span nodes, but
    routes the command itself by its keys, as one server runs it.
    """
    pipe.execute_command("MGET", *keys)


async def script_first(
    client: Client,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[Any],
    then: Callable[[Pipe], None] | None = None,
) -> list[Any]:
    """`script`, then the commands `then` queues, in one pipeline: one round trip.

    Calling a script loads it when Redis forgot it (a restart, SCRIPT FLUSH); a pipeline
    does not, so on NoScriptError the script is loaded and the pipeline sent again. On a
    cluster the pipeline is sent to each node holding one of its keys, the script's node
    getting the script and what follows it on that node in order, on one connection; SCRIPT
    LOAD goes to every master.
    """
    if then is None:  # nothing to follow it: the script on its own
        return [await script(keys=keys, args=args)]
    while True:
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            then(pipe)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                await client.script_load(script.script)


def _name(error: Exception) -> str:
    return type(error).__name__


def _options(url: str) -> dict[str, Any]:
    if url.startswith("rediss://"):
        return {"decode_responses": True, "ssl_cert_reqs": "none"}
    return {"decode_responses": True}
