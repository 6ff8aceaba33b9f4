# Names for the message model's literals (wire/message.py), for the edge and
# tests. Devices never import this module: on a 64K heap every global costs,
# so the firmware writes the protocol's literals directly.

# message types ("t")
HELLO = "hello"
STATE = "state"
EVENT = "ev"
STATUS = "status"
COMMAND = "cmd"
ACK = "ack"
RESULT = "res"
LOOKUP = "lookup"
FUNDS = "funds"
NEAR = "near"

# events ("ev")
RENTED = "rented"
RETURNED = "returned"
FAULT = "fault"

# MQTT topics, written here once for the edge, its broker's ACL and the bridge
# (the firmware writes its own literals, firmware/lib/uplink/mqtt.py):
#   huimin/<site>/<device>/<leaf>    a device publishes UP leaves, reads DOWN
#   huimin/<site>/_edge/status       the edge's presence (retained, its Will)
#   huimin-city/<site>/<what>        the bridge at a city broker (cloud_bridge/mqtt_uplink.py)
UP_LEAVES = {"hello": HELLO, "state": STATE, "event": EVENT, "result": RESULT,
             "status": STATUS, "lookup": LOOKUP}  # leaf -> the message type it carries
DOWN_LEAF = "down"
EDGE_PRESENCE = "_edge"


def topic(site, device, leaf):
    """A device topic; device may be a wildcard ("+", or the broker's "%u")."""
    return "huimin/%s/%s/%s" % (site, device, leaf)


def site_topics(site):
    """Every device topic of a site (a monitor's read)."""
    return "huimin/%s/#" % site


def city_prefix(site):
    """Where a site's bridge publishes at the city broker ("+": every site)."""
    return "huimin-city/%s" % site


def city_topic(site, what):
    """A topic of a site's bridge at the city broker: events, status/<station>,
    rentals/new, rentals/results, gbfs/<version>/<feed>."""
    return "%s/%s" % (city_prefix(site), what)


CITY_ALL = "huimin-city/#"


# A kiosk's link takes messages up to this size (its frame buffer; the edge
# trims a funds answer's oldest records to fit). Fund records travel as rows:
# [programme, amount in fen, date paid, status].
KIOSK_MAX_MESSAGE = 640

# wire.link Link.stats, by index
LINK_STATS = ("tx", "retx", "giveup", "rx", "dup", "queue_full", "stray_ack")

# decode failure reasons (DecodeError.reason)
E_SIZE = "oversize"
E_JSON = "json"
E_TYPE = "unknown_type"
E_FIELD = "bad_field"
