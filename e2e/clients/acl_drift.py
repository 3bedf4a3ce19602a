"""An ACL added behind the control plane's back: as the cluster's super user (a librdkafka
properties file), creates an ACL for User:mallory, then waits until the control plane's
reconciler has removed it while the ACLs it manages for User:vera stay. Prints one JSON line.
Usage: python acl_drift.py PROPERTIES"""
import json
import sys
import time

from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
    ResourcePatternType, ResourceType,
)


def main():
    conf = {}
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                conf[key] = value
    admin = AdminClient(conf)

    def of(principal):
        flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                               AclOperation.ANY, AclPermissionType.ANY)
        return admin.describe_acls(flt).result(timeout=30)

    rogue = AclBinding(ResourceType.TOPIC, "payments", ResourcePatternType.LITERAL, "User:mallory",
                       "*", AclOperation.ALL, AclPermissionType.ALLOW)
    for f in admin.create_acls([rogue]).values():
        f.result(timeout=30)
    seen = len(of("User:mallory"))
    started, deadline = time.time(), time.time() + 90
    while of("User:mallory") and time.time() < deadline:
        time.sleep(0.5)
    left = len(of("User:mallory"))
    kept = len(of("User:vera"))
    ok = seen == 1 and left == 0 and kept > 0
    print(json.dumps({"ok": ok, "seen": seen, "left": left, "vera kept": kept,
                      "removed after s": round(time.time() - started, 1)}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
