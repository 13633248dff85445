"""The public `queuery-client` package (PyPI 1.1.1), unchanged, against `kondate serve`.

Each test server is a real `kondate serve` process over a fresh project, with the embedded
warehouse and, when KONDATE_TEST_POSTGRES_URL is set, the PostgreSQL warehouse too.
"""

import datetime
import os
import signal
import subprocess

import pytest
import requests
from queuery_client import QueueryClient
from queuery_client.exceptions import QueueryError

from kondate_helpers import run, serve


ITEMS_CSV = (
    "id,name,note,price,in_stock,day,at\n"
    "1,醤油,\"濃口, 1L\",398.5,true,2024-01-02,2024-01-02 03:04:05\n"
    "2,みりん,\"say \"\"hi\"\"\",250.0,false,2024-02-03,2024-02-03 00:00:00\n"
    "3,back\\slash,\"two\nlines\",,true,,\n"
)
SCHEMA = "id:bigint,name:text,note:text,price:double,in_stock:bool,day:date,at:timestamp"

PG_SETUP = """
DROP SCHEMA IF EXISTS t CASCADE;
CREATE SCHEMA t;
CREATE TABLE t.items (id bigint, name text, note text, price double precision,
                      in_stock boolean, day date, at timestamp);
INSERT INTO t.items VALUES
 (1, '醤油', '濃口, 1L', 398.5, true, '2024-01-02', '2024-01-02 03:04:05'),
 (2, 'みりん', 'say "hi"', 250.0, false, '2024-02-03', '2024-02-03 00:00:00'),
 (3, E'back\\\\slash', E'two\\nlines', NULL, true, NULL, NULL);
-- kondate queries as a role that can only read (docs/query-api.md): not the superuser
-- the tests set the data up with, which kondate refuses to serve queries as.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kondate_reader') THEN
    CREATE ROLE kondate_reader LOGIN;
  END IF;
END $$;
GRANT USAGE ON SCHEMA t TO kondate_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA t TO kondate_reader;
"""


def as_role(url, role):
    """`url` with `role` as its user."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


def backends():
    yield "embedded"
    if os.environ.get("KONDATE_TEST_POSTGRES_URL"):
        yield "postgres"


@pytest.fixture(params=list(backends()))
def server(request, tmp_path):
    project = tmp_path / "proj"
    run(["init", str(project)], cwd=tmp_path)
    env = dict(os.environ)
    env.pop("KONDATE_PROJECT", None)
    if request.param == "embedded":
        (project / "items.csv").write_text(ITEMS_CSV, encoding="utf-8")
        run(["warehouse", "load", "t.items", "items.csv", "--schema", SCHEMA], cwd=project, env=env)
    else:
        url = os.environ["KONDATE_TEST_POSTGRES_URL"]
        subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", PG_SETUP], check=True)
        env["KONDATE_WAREHOUSE_TYPE"] = "postgres"
        env["KONDATE_WAREHOUSE_URL"] = as_role(url, "kondate_reader")
    token, proc, endpoint = serve(project, env)
    os.environ["QUEUERY_ENDPOINT"] = endpoint
    os.environ["QUEUERY_TOKEN"] = token["name"]
    os.environ["QUEUERY_TOKEN_SECRET"] = token["secret"]
    yield endpoint
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, "kondate serve shuts down cleanly on SIGTERM"


def test_uncast_rows_are_strings_exactly_as_written(server):
    rows = QueueryClient().run("SELECT id, name, note, price FROM t.items ORDER BY id").read()
    assert rows[0][:3] == ["1", "醤油", "濃口, 1L"]
    assert rows[1][2] == 'say "hi"'
    assert rows[2][1:4] == ["back\\slash", "two\nlines", ""]


def test_cast_rows_use_the_manifest_types(server):
    rows = QueueryClient(enable_cast=True).run("SELECT * FROM t.items ORDER BY id").read()
    assert rows[0][0] == 1
    assert rows[0][3] == 398.5
    assert rows[0][4] is True
    assert rows[1][4] is False
    assert rows[0][5] == datetime.date(2024, 1, 2)
    assert rows[0][6] == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert rows[2][3] is None and rows[2][5] is None


def test_pandas_frame_has_column_names(server):
    df = QueueryClient(enable_cast=True).run("SELECT id, name FROM t.items ORDER BY id").read(use_pandas=True)
    assert list(df.columns) == ["id", "name"]
    assert df["name"].tolist() == ["醤油", "みりん", "back\\slash"]


def test_iteration_is_sized_by_the_manifest(server):
    result = QueueryClient(use_manifest=True).run("SELECT id FROM t.items")
    assert len(iter(result)) == 3
    assert sorted(int(r[0]) for r in result) == [1, 2, 3]


def test_engine_error_raises_queuery_error(server):
    with pytest.raises(QueueryError):
        QueueryClient().run("SELECT * FROM t.no_such_table")


def test_refused_statement_is_http_400(server):
    with pytest.raises(requests.HTTPError) as e:
        QueueryClient().run("DELETE FROM t.items")
    assert e.value.response.status_code == 400
    assert e.value.response.json()["error_code"] == "invalid_parameter"


def test_wrong_secret_is_http_401(server):
    os.environ["QUEUERY_TOKEN_SECRET"] = "wrong"
    with pytest.raises(requests.HTTPError) as e:
        QueueryClient().run("SELECT 1")
    assert e.value.response.status_code == 401
