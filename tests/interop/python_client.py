"""A plain kafka-python client standing in for the original scripts and their consumers.

produce: publishes messages exactly as the original producer_kafka.py did (daily shape and
         the legacy intraday value/field shape), key = symbol; prints what was sent.
consume: reads N messages as a plain consumer would and checks the original fields and
         their types; prints a JSON summary.
"""
import argparse
import json
import sys
import uuid
from datetime import datetime

from kafka import KafkaConsumer, KafkaProducer

ORIGINAL_DAILY = [
    {"symbol": "COMI", "exchange": "EGX", "interval": "Daily", "datetime": "2025-01-20T00:00:00",
     "open": 45.5, "high": 46.2, "low": 45.1, "close": 46.0, "volume": 1250000,
     "ingestion_timestamp": "2025-01-20T14:30:52.123456"},
    {"symbol": "ETEL", "exchange": "EGX", "interval": "Daily", "datetime": "2025-01-20T00:00:00",
     "open": 20.1, "high": 20.9, "low": 19.8, "close": 20.5, "volume": 830000,
     "ingestion_timestamp": "2025-01-20T14:30:52.223456"},
]
ORIGINAL_INTRADAY = [
    {"symbol": "COMI", "interval": "5 Minute", "datetime": "2025-01-20T09:35:00", "value": v,
     "field": f, "ingestion_timestamp": "2025-01-20T14:30:52.123456"}
    for f, v in (("open", 45.6), ("high", 45.9), ("low", 45.4), ("close", 45.75))
]


def produce(args):
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks="all",
        retries=5,
        max_in_flight_requests_per_connection=1,
        key_serializer=lambda k: k.encode("utf-8"),
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
    )
    sent = []
    for message in ORIGINAL_DAILY + ORIGINAL_INTRADAY:
        meta = producer.send(args.topic, key=message["symbol"], value=message).get(timeout=30)
        sent.append({"key": message["symbol"], "partition": meta.partition, "offset": meta.offset})
    producer.flush()
    print(json.dumps(sent))


TYPES = {
    "symbol": str, "exchange": str, "interval": str, "datetime": str,
    "open": (int, float), "high": (int, float), "low": (int, float), "close": (int, float),
    "volume": int, "ingestion_timestamp": str,
}


def consume(args):
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id="py-" + uuid.uuid4().hex,
        auto_offset_reset="earliest",
        consumer_timeout_ms=30000,
    )
    seen, problems, keys = 0, [], set()
    for record in consumer:
        message = json.loads(record.value)
        keys.add(record.key.decode("utf-8"))
        for field, kind in TYPES.items():
            if not isinstance(message.get(field), kind):
                problems.append(f"offset {record.offset}: {field}={message.get(field)!r}")
        for field in ("datetime", "ingestion_timestamp"):
            stamp = datetime.fromisoformat(message[field])
            if stamp.utcoffset() is None:
                problems.append(f"offset {record.offset}: {field} has no offset")
        seen += 1
        if seen >= args.count:
            break
    consumer.close()
    print(json.dumps({"count": seen, "keys": sorted(keys), "problems": problems}))
    return 0 if seen == args.count and not problems else 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    return produce(args) if args.mode == "produce" else consume(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
