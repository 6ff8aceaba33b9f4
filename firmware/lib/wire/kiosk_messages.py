# The kiosk's messages, added to the one message model (wire.message) by
# importing this module: kiosks and the edge do, docks never load it.
from wire import message

message.SCHEMA["lookup"] = "dev #id token"
message.SCHEMA["funds"] = "#id ?ok err~ *records~ #as_of~ ?stale~ mac~"
message.SCHEMA["near"] = "*stations mac~"
