#!/usr/bin/python3
"""Drives a broker with kafka-python (Debian python3-kafka 2.0.2) and checks every answer.

Usage: kafka_python_client.py MODE BOOTSTRAP TOPIC [GROUP]

  basic         produce 10 records with chosen timestamps to partition 0 of TOPIC, consume
                them back, check end_offsets, beginning_offsets and offsets_for_times.
  group-first   a KafkaConsumer(group_id=GROUP) subscribes to TOPIC, reads the 6 records
                there, commits, and checks committed().
  group-resume  a new consumer in GROUP reads only the records after the commit (values
                "new-*"), commits, and checks committed() again.
  produce-acked produce COUNT (the fourth argument) records "py-NNNNNN" to partition 0 of
                TOPIC, about 2,000 a second, acks=all with retries, and print "ACKED value
                offset" for each one acknowledged and "FAILED value error" for each not;
                checks that none failed. Run through a leader's kill by the cluster tests.

Prints one line per check; exits 1 on the first wrong answer, 2 on bad usage.
"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata  # noqa: F401 (documents what commit() takes)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg, flush=True)


def basic(bootstrap, topic):
    base = int(time.time() * 1000) - 3600 * 1000  # an hour ago, whole seconds apart
    base -= base % 1000
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5,
                             request_timeout_ms=30000)
    for i in range(10):
        md = producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0,
                           timestamp_ms=base + i * 1000,
                           headers=[("n", str(i).encode())]).get(timeout=30)
        check(md.partition == 0 and md.offset == i,
              "send %d acknowledged at partition 0 offset %d (got %d/%d)" % (i, i, md.partition, md.offset))
    producer.flush()
    producer.close()

    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    deadline = time.time() + 30
    while len(got) < 10 and time.time() < deadline:
        for recs in consumer.poll(timeout_ms=1000).values():
            got.extend(recs)
    check(len(got) == 10, "consumed 10 records (got %d)" % len(got))
    for i, r in enumerate(got):
        check(r.offset == i and r.key == b"k%d" % i and r.value == b"v%d" % i
              and r.timestamp == base + i * 1000 and list(r.headers) == [("n", str(i).encode())],
              "record %d: offset, key, value, timestamp and header as produced (got %r)" % (i, r))

    check(consumer.end_offsets([tp]) == {tp: 10}, "end_offsets is 10")
    check(consumer.beginning_offsets([tp]) == {tp: 0}, "beginning_offsets is 0")
    found = consumer.offsets_for_times({tp: base + 2500})[tp]
    check(found is not None and found.offset == 3 and found.timestamp == base + 3000,
          "offsets_for_times(base+2.5s) is offset 3 at base+3s (got %r)" % (found,))
    found = consumer.offsets_for_times({tp: base})[tp]
    check(found is not None and found.offset == 0, "offsets_for_times(base) is offset 0 (got %r)" % (found,))
    found = consumer.offsets_for_times({tp: base + 3600 * 1000 * 2})[tp]
    check(found is None, "offsets_for_times after the last record is None (got %r)" % (found,))
    consumer.close()


def read_group(bootstrap, topic, group, want):
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=10000, heartbeat_interval_ms=1000)
    got = []
    deadline = time.time() + 60
    while len(got) < want and time.time() < deadline:
        for recs in consumer.poll(timeout_ms=1000).values():
            got.extend(recs)
    # Nothing more may come: poll a little longer.
    end = time.time() + 2
    while time.time() < end:
        for recs in consumer.poll(timeout_ms=500).values():
            got.extend(recs)
    consumer.commit()
    return consumer, got


def group_first(bootstrap, topic, group):
    consumer, got = read_group(bootstrap, topic, group, 6)
    values = sorted(r.value for r in got)
    check(values == sorted(b"old-%d" % i for i in range(6)), "group read the 6 old records once (got %r)" % values)
    parts = consumer.partitions_for_topic(topic)
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    for tp, end in ends.items():
        check(consumer.committed(tp) == end, "committed(%s) is the end offset %d (got %r)" % (tp, end, consumer.committed(tp)))
    consumer.close()


def group_resume(bootstrap, topic, group):
    consumer, got = read_group(bootstrap, topic, group, 3)
    values = sorted(r.value for r in got)
    check(values == sorted(b"new-%d" % i for i in range(3)),
          "resumed group read only the 3 new records (got %r)" % values)
    parts = consumer.partitions_for_topic(topic)
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    for tp, end in ends.items():
        check(consumer.committed(tp) == end, "committed(%s) is the end offset %d after resume (got %r)" % (tp, end, consumer.committed(tp)))
    consumer.close()


def produce_acked(bootstrap, topic, count):
    # One request in flight keeps a retried batch in order. The metadata age is short so
    # that a dead leader is noticed soon.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=50,
                             retry_backoff_ms=100, request_timeout_ms=5000,
                             metadata_max_age_ms=1000, linger_ms=5,
                             max_in_flight_requests_per_connection=1)
    failed = []

    def acked(value):
        return lambda md: print("ACKED %s %d" % (value, md.offset), flush=True)

    def not_acked(value):
        def report(err):
            failed.append(value)
            print("FAILED %s %r" % (value, err), flush=True)
        return report

    for i in range(count):
        value = "py-%06d" % i
        producer.send(topic, value=value.encode(), partition=0).add_callback(
            acked(value)).add_errback(not_acked(value))
        if i % 20 == 19:
            time.sleep(0.01)
    producer.flush(timeout=120)
    producer.close(timeout=10)
    check(not failed, "every one of %d records acknowledged (%d failed)" % (count, len(failed)))


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    mode, bootstrap, topic = sys.argv[1:4]
    if mode == "basic":
        basic(bootstrap, topic)
    elif mode in ("group-first", "group-resume") and len(sys.argv) == 5:
        (group_first if mode == "group-first" else group_resume)(bootstrap, topic, sys.argv[4])
    elif mode == "produce-acked" and len(sys.argv) == 5:
        produce_acked(bootstrap, topic, int(sys.argv[4]))
    else:
        print(__doc__)
        sys.exit(2)
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
