"""Which mailbox a recipient's copy goes to.

By default one mailbox per envelope recipient, named by the lower-cased address.
``--mailbox-key domain|local`` chooses another key; ``--subaddress`` files
``user+tag@host`` under ``user@host`` and tags the message ``tag``.
"""

from __future__ import annotations

__all__ = ["mailbox_for"]


def mailbox_for(rcpt: str, key: str = "address", subaddress: bool = False) -> tuple[str, str | None]:
    """Return (mailbox name, tag or None) for an envelope recipient.

    Args:
        rcpt: the RCPT TO address, without angle brackets.
        key: "address", "domain" or "local".
        subaddress: strip ``+tag`` from the local part and return it as a tag.
    """
    addr = rcpt.strip().strip("<>")
    local, at, domain = addr.rpartition("@")
    if not at:
        local, domain = addr, ""
    tag: str | None = None
    if subaddress and "+" in local:
        local, _, tag = local.partition("+")
        tag = tag or None
    domain = domain.lower()
    local_key = local.lower()
    if key == "domain":
        name = domain or local_key
    elif key == "local":
        name = local_key
    else:
        name = f"{local_key}@{domain}" if domain else local_key
    return name or "(empty)", tag
