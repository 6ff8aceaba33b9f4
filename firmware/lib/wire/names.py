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
