# SPDX-License-Identifier: Apache-2.0
"""Custos hello world: a program that gets a user name in clear and a password that only CAS knows.

It prints the user and a checksum of the password (never the password), then checks every few
seconds that neither changed under it. HELLO_ROUNDS (if set) stops it after that many checks."""
import hashlib
import os
import sys
import time


def checksum(value):
    return hashlib.sha256(value.encode()).hexdigest()[:32] if value is not None else None


def main():
    user = os.environ.get("API_USER")
    password = os.environ.get("API_PASSWORD")
    if user is None or password is None:
        print("API_USER or API_PASSWORD is missing: run me with cas-run and the hello session", flush=True)
        return 1
    first = checksum(password)
    print(f"Hello, '{user}': CAS passed the API_PASSWORD along", flush=True)
    print(f"The checksum of the API_PASSWORD is '{first}'", flush=True)
    rounds = int(os.environ.get("HELLO_ROUNDS") or "0")
    interval = float(os.environ.get("HELLO_INTERVAL") or "5")
    n = 0
    while rounds == 0 or n < rounds:
        n += 1
        now_user, now = os.environ.get("API_USER"), checksum(os.environ.get("API_PASSWORD"))
        print(f"Round {n}: user '{now_user}', password checksum '{now}'", flush=True)
        if now_user != user or now != first:
            print("Integrity violation: API_USER or API_PASSWORD changed", flush=True)
            return 1
        if rounds == 0 or n < rounds:
            time.sleep(interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
