"""Where a connector may connect: a public host only, unless the server's configuration allows private ones
(`CONNECTOR_ALLOW_PRIVATE_HOSTS`, for a test bench or an operator's internal gateway).

A CPTS's admin chooses its webhook, DMP and SMS addresses; without this check the hub would POST on their
behalf to its own loopback, to the cloud's metadata service (169.254.169.254) or to the private network
behind it. A name is checked by what it resolves to, at save time and again just before each connection,
since what a name designates can change between the two.
"""

import ipaddress
import socket
from collections.abc import Mapping

ALLOW_PRIVATE_HOSTS = "CONNECTOR_ALLOW_PRIVATE_HOSTS"
NOT_PUBLIC = (
    "Adresse refusée : ce serveur n'est pas public (bouclage, réseau privé ou local, adresse réservée) ; "
    "seul un serveur joignable sur Internet est accepté."
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NonPublicTarget(ValueError):
    """The host is, or resolves to, an address that is not public."""


def allows_private_hosts(config: Mapping) -> bool:
    return str(config.get(ALLOW_PRIVATE_HOSTS) or "0").strip().lower() in ("1", "true", "yes", "on")


def is_public(address: IPAddress) -> bool:
    """A unicast address routable on the Internet. IPv6 forms that carry an IPv4 address (mapped, 6to4,
    Teredo) are judged by that address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo and address.teredo[1])
        if embedded and not is_public(embedded):
            return False
    flags = (
        address.is_private,
        address.is_loopback,
        address.is_link_local,
        address.is_multicast,
        address.is_reserved,
        address.is_unspecified,
    )
    return address.is_global and not any(flags)


def check_public(host: str, *, port: int | None = None) -> None:
    """Return if every address `host` designates now is public; raise NonPublicTarget otherwise, OSError when
    the name does not resolve. The system's resolver also reads the odd spellings of an IPv4 address
    (`2130706433`, `0x7f.1`), which a literal check would miss."""
    if not host:
        raise NonPublicTarget(NOT_PUBLIC)
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # fe80::1%eth0: the zone aside
        if not is_public(address):
            raise NonPublicTarget(NOT_PUBLIC)
