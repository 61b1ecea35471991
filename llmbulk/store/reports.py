"""Reports: the reads behind `status`, `stats`, the merged output and the cost calibration.

Status reads use the shared SQL of `queries.py` (the quick reader runs the same statements).
Rows are handed out as plain tuples and dicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import bindparam, text

from llmbulk.store import queries
from llmbulk.store.engine import READ_OPTION
from llmbulk.store.unit import Reading


class Reports(Reading):
    """Read-only reports over jobs, items, attempts and batches."""

    def item_counts(self, job_id: str) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(text(queries.ITEM_COUNTS), {"j": job_id})
            return {state: int(n) for state, n in rows}

    def usage_totals(self, job_id: str) -> dict[str, int]:
        """Tokens and attempts of the job's collected batches (sums kept per batch at collect)."""
        with self._read() as conn:
            row = conn.execute(text(queries.USAGE), {"j": job_id}).one()
        return {"input_tokens": int(row[0]), "output_tokens": int(row[1]), "attempts": int(row[2])}

    def error_counts(self, job_id: str) -> list[tuple[str, str, int]]:
        """(state, error code, count) for items that are not succeeded, largest first."""
        with self._read() as conn:
            rows = conn.execute(text(queries.ERROR_COUNTS), {"j": job_id})
            return [(s, c, int(n)) for s, c, n in rows]

    def items_in_state(self, job_id: str, state: str, limit: int | None = None) -> list[dict[str, Any]]:
        sql = queries.items_in_state(state)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as conn:
            return [dict(r) for r in conn.execute(text(sql), {"j": job_id, "s": state}).mappings()]

    def merged_rows(self, job_id: str) -> Iterator[tuple[Any, ...]]:
        """Per item in input order: row, key, state, attempts and the current attempt's outcome."""
        sql = (
            "SELECT i.row_index, i.key, i.state, i.attempts, a.output, a.finish_reason, a.input_tokens,"
            " a.output_tokens, a.error_type, a.error_code, a.error_message, a.cached_tokens, a.reused_from FROM items i"
            " LEFT JOIN attempts a ON a.job_id = i.job_id AND a.row_index = i.row_index"
            " AND a.attempt = i.attempts WHERE i.job_id = ? ORDER BY i.row_index"
        )
        with self._engine.connect() as conn:
            conn = conn.execution_options(**{READ_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "sqlite":  # the driver's own cursor, a block at a time: a third of the CPU
                    cursor = conn.connection.cursor()
                    try:
                        cursor.execute(sql, (job_id,))
                        while block := cursor.fetchmany(5000):
                            yield from block
                    finally:
                        cursor.close()
                    return
                streamed = conn.execution_options(stream_results=True, yield_per=5000)  # a server-side cursor
                for chunk in streamed.exec_driver_sql(sql.replace("?", "%s"), (job_id,)).partitions():
                    yield from map(tuple, chunk)  # plain tuples, not SQLAlchemy rows

    def calibration(self, provider: str, model: str, emulated: bool) -> tuple[float | None, float | None]:
        """(chars per input token, mean output tokens per success) from this database's past jobs.

        Only jobs of the same kind count: the emulator's token counts are not a real tokenizer's.
        Characters are per item and tokens per successful attempt, so retries and failures do not
        skew the ratio.
        """
        with self._read() as conn:
            row = conn.execute(
                text(
                    "SELECT SUM(j.prompt_chars), SUM(j.n_items), SUM(t.input_tokens), SUM(t.n_ok), SUM(t.output_tokens)"
                    " FROM jobs j JOIN (SELECT job_id, SUM(input_tokens) AS input_tokens,"
                    " SUM(output_tokens) AS output_tokens, COUNT(*) AS n_ok FROM attempts"
                    " WHERE outcome = 'succeeded' AND input_tokens IS NOT NULL GROUP BY job_id) t ON t.job_id = j.id"
                    " WHERE j.provider = :p AND j.model = :m AND j.emulated = :e AND j.prompt_chars IS NOT NULL"
                    " AND j.n_items > 0"
                ),
                {"p": provider, "m": model, "e": emulated},
            ).one()
        # PostgreSQL's SUM of integers is NUMERIC (decimal.Decimal): every figure becomes a float first.
        chars, n_items, tokens, n_ok, out_tokens = (None if v is None else float(v) for v in row)
        per_token = (chars / n_items) / (tokens / n_ok) if chars and n_items and tokens and n_ok else None
        per_item = out_tokens / n_ok if out_tokens is not None and n_ok else None
        return per_token, per_item

    def token_totals(self, job_id: str) -> dict[str, int]:
        """Billed tokens over every attempt of a job (all attempts are billed, not only the last; answers
        taken from another item were not sent and are not billed)."""
        with self._read() as conn:
            return queries.token_totals(tuple(conn.execute(text(queries.TOKEN_TOTALS), {"j": job_id}).one()))

    def reused_totals(self, job_id: str) -> dict[str, int]:
        """Tokens of the job's answers taken without sending (from earlier jobs or repeated rows)."""
        with self._read() as conn:
            return queries.reused_totals(tuple(conn.execute(text(queries.REUSED_TOTALS), {"j": job_id}).one()))

    def stats_rows(self, job_ids: Sequence[str]) -> dict[str, Any]:
        """Raw figures for `stats`: batch latencies, attempt outcomes by error code (of the requests
        sent: answers taken from another item are left out), resends, item states."""
        if not job_ids:
            return {"latencies": [], "outcomes": [], "states": {}, "span": (None, None), "retries": 0}
        ids = {"ids": list(job_ids)}
        with self._read() as conn:
            latencies = [
                float(r[0])
                for r in conn.execute(
                    text(
                        "SELECT ended_at - created_at FROM batches WHERE job_id IN :ids"
                        " AND ended_at IS NOT NULL AND created_at IS NOT NULL"
                    ).bindparams(bindparam("ids", expanding=True)),
                    ids,
                )
            ]
            outcomes = [
                (o, c, int(n))
                for o, c, n in conn.execute(
                    text(
                        "SELECT outcome, COALESCE(error_code, ''), COUNT(*) FROM attempts WHERE job_id IN :ids"
                        " AND reused_from IS NULL GROUP BY outcome, COALESCE(error_code, '') ORDER BY 3 DESC"
                    ).bindparams(bindparam("ids", expanding=True)),
                    ids,
                )
            ]
            retries = conn.execute(
                text(
                    "SELECT COUNT(*) FROM attempts WHERE job_id IN :ids AND attempt > 1 AND reused_from IS NULL"
                ).bindparams(bindparam("ids", expanding=True)),
                ids,
            ).scalar_one()
            states = {
                s: int(n)
                for s, n in conn.execute(
                    text("SELECT state, COUNT(*) FROM items WHERE job_id IN :ids GROUP BY state").bindparams(
                        bindparam("ids", expanding=True)
                    ),
                    ids,
                )
            }
            span = conn.execute(
                text("SELECT MIN(created_at), MAX(ended_at) FROM batches WHERE job_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                ids,
            ).one()
        return {
            "latencies": latencies, "outcomes": outcomes, "states": states, "span": tuple(span), "retries": int(retries)
        }  # fmt: skip
