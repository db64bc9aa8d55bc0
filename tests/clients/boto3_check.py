"""boto3 against the router, as an application would use it: nothing but the endpoint
(AWS_ENDPOINT_URL_S3), the key pair and the region come from the environment.

Usage: python boto3_check.py BUCKET

Checks presigned GET and PUT, ListObjectsV2 pagination over 5,000 keys with and without
a delimiter (keys in S3's byte order, every key once), DeleteObjects in batches of
1,000 (quiet and not), and leaves the bucket empty. Prints one line per check; exits
non-zero on the first failure, with what was expected and what came back.
"""

import concurrent.futures
import sys
import urllib.request

import boto3
from botocore.config import Config

bucket = sys.argv[1]
# SigV4 for presigned URLs too (boto3 still presigns with SigV2 unless told).
s3 = boto3.client(
    "s3",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=32),
)


def check(cond, what, got):
    if not cond:
        print(f"FAILED: {what}: got {got!r}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


# Presigned PUT then presigned GET, with no credentials in the HTTP client.
body = b"presigned body \x00\xff" * 1000
put_url = s3.generate_presigned_url(
    "put_object", Params={"Bucket": bucket, "Key": "presigned/a b+c.bin"}, ExpiresIn=300
)
request = urllib.request.Request(put_url, data=body, method="PUT")
with urllib.request.urlopen(request) as response:
    check(response.status == 200, "presigned PUT", response.status)
get_url = s3.generate_presigned_url(
    "get_object", Params={"Bucket": bucket, "Key": "presigned/a b+c.bin"}, ExpiresIn=300
)
with urllib.request.urlopen(get_url) as response:
    check(response.read() == body, "presigned GET returns what was put", "other bytes")
s3.delete_object(Bucket=bucket, Key="presigned/a b+c.bin")

# 5,000 keys over 50 prefixes, plus names that sort around the directory separator.
keys = [f"many/{i % 50:02d}/{i:05d}" for i in range(4990)]
keys += ["many/00-x", "many/00/", "many/000", "many/00.z", "many/0", "many/a-b", "many/a/b", "many/a0", "many/é", "many/z"]
keys = [k for k in keys if not k.endswith("/")] + ["many/00/"]


def put(key):
    # A key ending in / is a folder object: it holds no data.
    s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())


with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
    list(pool.map(put, keys))
expected = sorted(keys, key=lambda k: k.encode())

paginator = s3.get_paginator("list_objects_v2")
listed, pages = [], 0
for page in paginator.paginate(Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 700}):
    pages += 1
    listed += [o["Key"] for o in page.get("Contents", [])]
check(listed == expected, f"ListObjectsV2 without a delimiter: {len(expected)} keys in byte order", [(a, b) for a, b in zip(listed, expected) if a != b][:5] or len(listed))
check(pages == (len(expected) + 699) // 700, "pages of 700", pages)

listed, prefixes = [], []
for page in paginator.paginate(Bucket=bucket, Prefix="many/", Delimiter="/", PaginationConfig={"PageSize": 7}):
    listed += [o["Key"] for o in page.get("Contents", [])]
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
want_keys = sorted({k for k in keys if "/" not in k[len("many/"):]}, key=lambda k: k.encode())
want_prefixes = sorted({k[: k.index("/", len("many/")) + 1] for k in keys if "/" in k[len("many/"):]}, key=lambda k: k.encode())
check(listed == want_keys, "ListObjectsV2 with delimiter /: keys", listed)
check(prefixes == want_prefixes, "ListObjectsV2 with delimiter /: common prefixes, each once", prefixes)

listed, prefixes = [], []
for page in paginator.paginate(Bucket=bucket, Prefix="many/", Delimiter="0", PaginationConfig={"PageSize": 3}):
    listed += [o["Key"] for o in page.get("Contents", [])]
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
want_keys = sorted({k for k in keys if "0" not in k[len("many/"):]}, key=lambda k: k.encode())
want_prefixes = sorted({k[: k.index("0", len("many/")) + 1] for k in keys if "0" in k[len("many/"):]}, key=lambda k: k.encode())
check(listed == want_keys, "ListObjectsV2 with delimiter 0: keys", listed)
check(prefixes == want_prefixes, "ListObjectsV2 with delimiter 0: common prefixes", prefixes)

# ListObjects v1 with a marker, and StartAfter in v2.
v1 = s3.list_objects(Bucket=bucket, Prefix="many/", Marker=expected[100], MaxKeys=5)
check([o["Key"] for o in v1["Contents"]] == expected[101:106], "ListObjects v1 after a marker", v1.get("Contents"))
v2 = s3.list_objects_v2(Bucket=bucket, Prefix="many/", StartAfter=expected[4000], MaxKeys=3)
check([o["Key"] for o in v2["Contents"]] == expected[4001:4004], "ListObjectsV2 StartAfter", v2.get("Contents"))

# DeleteObjects: 1,000 at a time, the first batch quiet.
for n, start in enumerate(range(0, len(keys), 1000)):
    batch = keys[start : start + 1000]
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in batch], "Quiet": n == 0},
    )
    check(not answer.get("Errors"), f"DeleteObjects batch {n} has no errors", answer.get("Errors"))
    deleted = answer.get("Deleted", [])
    check(len(deleted) == (0 if n == 0 else len(batch)), f"DeleteObjects batch {n} reports {'nothing (quiet)' if n == 0 else 'every key'}", len(deleted))
left = s3.list_objects_v2(Bucket=bucket, Prefix="many/")
check(left["KeyCount"] == 0, "nothing left under many/", left.get("Contents"))
