"""hdi from Python: a client of the hdi control plane's REST API (:class:`Client`, typed by
:mod:`hdi.models`, generated from ``openapi/hdi.json``), topics read into pandas
(:mod:`hdi.kafka`) and live matplotlib charts for Jupyter (:mod:`hdi.live`).

>>> import hdi
>>> client = hdi.Client("http://127.0.0.1:7420", token_file=".hdi/secrets/admin-token")
>>> access = client.kafka_access("default", "demo-kafka")
>>> df = hdi.kafka.read(access, "transactions", from_="earliest", max_records=1000)
"""

from . import kafka, live, models
from .client import Client, KafkaAccess, ProblemError, flatten, progress_frame
from .live import LiveChart

__all__ = [
    "Client",
    "KafkaAccess",
    "LiveChart",
    "ProblemError",
    "flatten",
    "kafka",
    "live",
    "models",
    "progress_frame",
]
__version__ = "0.1.0"
