"""Every line a local function worker prints names its service, library warnings included.

The worker is a spawned process: it re-imports its parent's main module before the function's
environment is applied, so a main module that imports orderpipe_common first (`python script.py`)
used to leave the worker's logger with `service_undefined`, and the Cassandra driver's warnings
were printed as bare text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from orderpipe_common.settings import PowertoolsSettings

HANDLER = textwrap.dedent(
    """
    import logging

    from orderpipe_common.observability import logger


    def lambda_handler(event, context):
        logging.getLogger("cassandra.cluster").warning("Host 127.0.0.1:9 has been marked down")
        logging.getLogger("cassandra.pool").error("Error attempting to reconnect to 127.0.0.1:9")
        logging.getLogger("botocore.retryhandler").warning("retry needed: throttled")
        logging.getLogger("urllib3.connectionpool").warning("Retrying after connection broken")
        logging.getLogger("botocore.credentials").info("below WARNING: not printed")
        logger.info("handled")
        return {"ok": True}
    """
)

# The parent imports orderpipe_common before it starts the worker, as a script run with `python` may.
SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import orderpipe_common.observability  # noqa: F401
    from orderpipe_devenv.runtime.lambda_pool import LocalFunction

    if __name__ == "__main__":
        function = LocalFunction(
            name="writer",
            handler="noisy_handler.lambda_handler",
            environment=json.loads(sys.argv[1]),
            concurrency=1,
            timeout_seconds=20,
        )
        try:
            answer = function.invoke({})
        finally:
            function.close()
        sys.exit(0 if answer == {"ok": True} else 1)
    """
)


def test_a_worker_started_by_a_script_that_imported_orderpipe_common_names_its_service_on_every_line(
    tmp_path: Path,
):
    # Given a handler whose libraries warn, and a parent script that imported orderpipe_common first
    (tmp_path / "noisy_handler.py").write_text(HANDLER)
    (tmp_path / "script.py").write_text(SCRIPT)
    function_env = PowertoolsSettings.environment(
        powertools_service_name="writer", powertools_metrics_disabled=True, powertools_log_level="INFO"
    )
    parent_env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    # When the script starts the function's worker and invokes it
    done = subprocess.run(
        [sys.executable, "script.py", json.dumps(function_env)],
        cwd=tmp_path,
        env=parent_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    # Then every line is a JSON log line naming the writer, the library warnings included
    assert "service_undefined" not in done.stdout + done.stderr
    records = [json.loads(line) for line in lines]
    assert {record["service"] for record in records} == {"writer"}
    assert {record["message"] for record in records} == {
        "Host 127.0.0.1:9 has been marked down",
        "Error attempting to reconnect to 127.0.0.1:9",
        "retry needed: throttled",
        "Retrying after connection broken",
        "handled",
    }
