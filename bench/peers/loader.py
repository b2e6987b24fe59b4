"""A Python streaming loader, the way one is usually written: ijson (C backend) over the S3 body,
the same checks as plain Python, COPY through psycopg2's copy_expert in batches.
Env: BENCH_S3_ENDPOINT, BENCH_BUCKET, BENCH_KEY, DATABASE_URL. Prints {records, seconds, peakRss}."""
import io, json, os, re, resource, sys, time, urllib.request
from datetime import date
from decimal import Decimal, InvalidOperation

import ijson
import psycopg2

started = time.time()
CURRENCIES = {"EUR", "USD", "GBP", "CHF"}
AMOUNT = re.compile(r"^[+-]?\d+(\.\d{1,2})?$")


def iban_ok(value):
    iban = value.replace(" ", "").upper()
    if not re.match(r"^[A-Z]{2}\d{2}[A-Z0-9]{8,30}$", iban):
        return False
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def date_ok(value):
    try:
        date.fromisoformat(value)
        return len(value) == 10
    except (TypeError, ValueError):
        return False


def cents(value):
    text = str(value).strip()
    if isinstance(value, str) and "," in text:
        text = text.replace(" ", "").replace("\u00a0", "").replace(",", ".")
    if not AMOUNT.match(text):
        return None
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation:
        return None


def row(record):
    if not isinstance(record, dict):
        return None
    amount = cents(record.get("amount"))
    if not (isinstance(record.get("id"), str) and iban_ok(record.get("account_iban", "")) and date_ok(record.get("booking_date"))
            and amount is not None and str(record.get("currency", "")).upper() in CURRENCIES and isinstance(record.get("label"), str)):
        return None
    counterparty = record.get("counterparty") or {}
    iban = counterparty.get("iban")
    if iban is not None and not iban_ok(iban):
        return None
    return [record["id"], record["account_iban"].replace(" ", "").upper(), record["booking_date"], record.get("value_date"),
            amount, record["currency"].upper(), record["label"], counterparty.get("name"), iban, None]


def copy_text(value):
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


url = f"{os.environ['BENCH_S3_ENDPOINT']}/{os.environ['BENCH_BUCKET']}/{os.environ['BENCH_KEY']}"
connection = psycopg2.connect(os.environ["DATABASE_URL"])
cursor = connection.cursor()
cursor.execute("CREATE TABLE IF NOT EXISTS python_transactions (id text PRIMARY KEY, account_iban text, booking_date date, value_date date,"
               " amount_cents bigint, currency text, label text, counterparty_name text, counterparty_iban text, property_id text)")
records = rejected = 0
buffer = io.StringIO()
with urllib.request.urlopen(url) as body:
    for record in ijson.items(body, "item", use_float=True):
        records += 1
        values = row(record)
        if values is None:
            rejected += 1
            continue
        buffer.write("\t".join(copy_text(v) for v in values) + "\n")
        if records % 5000 == 0:
            buffer.seek(0)
            cursor.copy_expert("COPY python_transactions FROM STDIN", buffer)
            buffer = io.StringIO()
buffer.seek(0)
cursor.copy_expert("COPY python_transactions FROM STDIN", buffer)
connection.commit()
print(json.dumps({"records": records, "rejected": rejected, "seconds": time.time() - started,
                  "peakRss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
