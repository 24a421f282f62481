"""The events on the backbone's topics: typed models, their Avro codec, and the correlation headers."""

from edi.events.codec import AvroCodec, DecodeError, LocalSchemaRegistry, SchemaRegistry, default_codec
from edi.events.headers import Correlation
from edi.events.models import (
    AcceptedMessage,
    AppRecAnswer,
    AppRecErrorDetail,
    BlobRef,
    DeadLetter,
    Delivery,
    Document,
    ErrorDetail,
    Event,
    RegistryChange,
    Rejection,
    RoutingFacts,
    Source,
    StatusChange,
    TransportState,
)

__all__ = [
    "AcceptedMessage",
    "AppRecAnswer",
    "AppRecErrorDetail",
    "AvroCodec",
    "BlobRef",
    "Correlation",
    "DeadLetter",
    "DecodeError",
    "Delivery",
    "Document",
    "ErrorDetail",
    "Event",
    "LocalSchemaRegistry",
    "RegistryChange",
    "Rejection",
    "RoutingFacts",
    "SchemaRegistry",
    "Source",
    "StatusChange",
    "TransportState",
    "default_codec",
]
