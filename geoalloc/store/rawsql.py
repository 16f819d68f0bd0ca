"""The relocation writer's statements, run on SQLite's own cursor inside a SQLAlchemy transaction.

Why: a relocation transaction runs about ten small statements, and SQLAlchemy's per-execute work
(parameter construction, events, result set-up) costs several times what SQLite itself spends on
them; with one writer thread that is the service's throughput. Here each statement is rendered
once, and every value passes through the column type's own SQLAlchemy bind (and result)
processor, so the rows are exactly those SQLAlchemy would write (UTC datetimes, JSON).

Only for SQLite (qmark parameters, ``RETURNING`` since SQLite 3.35); other databases use the
SQLAlchemy statements of :mod:`api.batching` and :func:`geoalloc.store.plans.apply_assignment_changes`.
The caller owns the transaction (``Database.write_connection``: ``BEGIN IMMEDIATE``, commit, rollback).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, DateTime, Table

Processor = Callable[[Any], Any] | None
#: The processors of a statement's parameters that do something: (position, processor).
Binds = tuple[tuple[int, Callable[[Any], Any]], ...]


def _last_value(p: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``p`` remembering its last argument (by identity): a batch passes the same timestamp object
    to every row of every table, and formatting a datetime costs more than the rest of its row."""
    last: list[Any] = [object(), None]

    def process(v: Any) -> Any:
        if v is not last[0]:
            last[0], last[1] = v, p(v)
        return last[1]

    return process


class SqliteStatements:
    """Rendered statements and processors per (table, columns), for one SQLAlchemy dialect."""

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self._q = dialect.identifier_preparer.quote
        self._cache: dict[tuple[Any, ...], tuple[str, Binds, list[Processor]]] = {}
        #: One remembering processor per timestamp type, shared by every column of that type: a
        #: batch's one timestamp is then formatted once, not once per table and column.
        self._stamps: dict[tuple[type, str], Callable[[Any], Any]] = {}

    # -- rendering ----------------------------------------------------------------------------------

    def _bind(self, table: Table, cols: Sequence[str]) -> Binds:
        out = []
        for k, c in enumerate(cols):
            t = table.c[c].type
            p = t.dialect_impl(self.dialect).bind_processor(self.dialect)
            if p is not None:
                if isinstance(t, DateTime) or isinstance(getattr(t, "impl", None), DateTime):
                    key = (type(t), repr(t))
                    if key not in self._stamps:
                        self._stamps[key] = _last_value(p)
                    p = self._stamps[key]
                out.append((k, p))
        return tuple(out)

    def _result(self, table: Table, cols: Sequence[str]) -> list[Processor]:
        return [table.c[c].type.dialect_impl(self.dialect).result_processor(self.dialect, None) for c in cols]

    def _insert_sql(self, table: Table, cols: tuple[str, ...], returning: str | None) -> tuple[str, Binds]:
        key = ("insert", table.name, cols, returning)
        hit = self._cache.get(key)
        if hit is None:
            sql = (f"INSERT INTO {self._q(table.name)} ({', '.join(self._q(c) for c in cols)}) "
                   f"VALUES ({', '.join('?' for _ in cols)})")
            if returning:
                sql += f" RETURNING {self._q(returning)}"
            hit = self._cache[key] = (sql, self._bind(table, cols), [])
        return hit[0], hit[1]

    @staticmethod
    def _params(binds: Binds, values: list[Any]) -> list[Any]:
        """``values`` (a fresh list, changed in place) as SQLite receives them."""
        for k, p in binds:
            v = values[k]
            if v is not None:
                values[k] = p(v)
        return values

    # -- statements ---------------------------------------------------------------------------------

    @staticmethod
    def cursor(conn: Connection) -> Any:
        """A DBAPI cursor on the connection's current transaction."""
        return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def insert(self, cur: Any, table: Table, rows: list[dict[str, Any]]) -> None:
        """executemany INSERT; every row has the columns of the first."""
        cols = tuple(rows[0])
        sql, procs = self._insert_sql(table, cols, None)
        cur.executemany(sql, [self._params(procs, [r[c] for c in cols]) for r in rows])

    def insert_returning(self, cur: Any, table: Table, rows: list[dict[str, Any]], column: str) -> list[Any]:
        """INSERT each row and return ``column`` of each, in row order."""
        cols = tuple(rows[0])
        sql, procs = self._insert_sql(table, cols, column)
        out = []
        for r in rows:
            cur.execute(sql, self._params(procs, [r[c] for c in cols]))
            out.append(cur.fetchone()[0])
        return out

    def update(self, cur: Any, table: Table, where: tuple[str, ...], rows: list[dict[str, Any]],
               where_params: tuple[str, ...] | None = None) -> int:
        """executemany ``UPDATE table SET <other keys> WHERE <where> = ...``; rows matched.

        ``where`` names the key columns; ``where_params`` the row keys holding their values
        (default: the same names). Every row has the keys of the first.
        """
        where_params = where_params or where
        sets = tuple(k for k in rows[0] if k not in where_params)
        key = ("update", table.name, sets, where, where_params)
        hit = self._cache.get(key)
        if hit is None:
            sql = (f"UPDATE {self._q(table.name)} SET {', '.join(f'{self._q(c)} = ?' for c in sets)} "
                   f"WHERE {' AND '.join(f'{self._q(c)} = ?' for c in where)}")
            hit = self._cache[key] = (sql, self._bind(table, sets + where), [])
        sql, procs = hit[0], hit[1]
        cur.executemany(sql, [self._params(procs, [r[c] for c in sets] + [r[c] for c in where_params]) for r in rows])
        return int(cur.rowcount)

    def select(self, cur: Any, table: Table, cols: tuple[str, ...], where_sql: str, params: Sequence[Any],
               where_cols: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """``SELECT cols FROM table WHERE <where_sql>`` as dicts of processed values.

        ``where_cols`` names the columns whose types bind ``params`` (in order; omitted: as given).
        """
        key = ("select", table.name, cols, where_sql)
        hit = self._cache.get(key)
        if hit is None:
            sql = f"SELECT {', '.join(self._q(c) for c in cols)} FROM {self._q(table.name)} WHERE {where_sql}"
            hit = self._cache[key] = (sql, [], self._result(table, cols))
        sql, rprocs = hit[0], hit[2]
        if where_cols:
            params = self._params(self._bind(table, where_cols), list(params))
        out = []
        for row in cur.execute(sql, tuple(params)).fetchall():
            out.append({c: (v if p is None or v is None else p(v)) for c, p, v in zip(cols, rprocs, row)})
        return out

    def bind(self, table: Table, column: str, value: Any) -> Any:
        """One value as SQLite receives it (for hand-written WHERE clauses)."""
        key = ("bind", table.name, column)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = ("", self._bind(table, (column,)), [])
        return self._params(hit[1], [value])[0]

    def apply_assignment_changes(self, cur: Any, assignments: Table, branches: Table, plan_id: int,
                                 rows: list[dict[str, Any]], branch_rows: list[dict[str, Any]],
                                 removed_branches: list[str]) -> None:
        """Same contract as :func:`geoalloc.store.plans.apply_assignment_changes`, on the raw cursor."""
        for table, key, recs in ((assignments, "member_id", rows), (branches, "branch_id", branch_rows)):
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for r in recs:  # executemany needs one column set per statement
                groups.setdefault(tuple(k for k in r if k not in ("plan_id", key)), []).append(r)
            for keys, group in groups.items():
                upd = [{**{k: r[k] for k in keys}, "plan_id": plan_id, key: r[key]} for r in group]
                if self.update(cur, table, ("plan_id", key), upd) != len(group):  # some rows are new: insert those
                    have = set()
                    for r in group:
                        have.update(x[key] for x in self.select(
                            cur, table, (key,), f"{self._q('plan_id')} = ? AND {self._q(key)} = ?", (plan_id, r[key])))
                    new = [r for r in group if r[key] not in have]
                    if new:
                        self.insert(cur, table, new)
        if removed_branches:
            cur.executemany(f"DELETE FROM {self._q(branches.name)} WHERE {self._q('plan_id')} = ? "
                            f"AND {self._q('branch_id')} = ?", [(plan_id, b) for b in removed_branches])
