"""The router service: edi.accepted -> one Delivery per receiver that may have it (edi.deliveries, keyed by
receiver HER-id), and for the others a Rejected status and one Rejection naming every refused receiver
(edi.rejected), from which the sender gets its negative AppRec.

The registry view comes from the compacted edi.registry topic (`RegistryFeed`); messages wait until it has
caught up, so a restarted router never refuses a receiver it simply has not read about yet.

Large attachments (`Attachments`, see `edi.services.objects.offload`): ingress has moved them to the object
service already; what an accepted record still carries inline over the threshold is moved here. Each Delivery
lists the objects the document refers to, and a receiver that cannot read FileReference is refused (T99) when the
document with its attachments inline would be larger than it may take.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edi.core.header import RoutingHeader
from edi.core.kinds import MessageKind
from edi.events import AcceptedMessage, BlobRef, Delivery, ErrorDetail, Rejection, StatusChange, TransportState
from edi.kapabilitetsregister.model import InvalidInputError
from edi.kapabilitetsregister.settings import CapabilityPolicySettings
from edi.kapabilitetsregister.specifications import read_routing_header
from edi.kapabilitetsregister.view import CapabilityPolicy
from edi.observability import metrics
from edi.schemas.topics import ACCEPTED, DELIVERIES, REJECTED, STATUS
from edi.services.objects.offload import Attachments, gets_inline
from edi.services.registry_relay.feed import RegistryFeed
from edi.services.router.routing import RefusedReceiver, route
from edi.services.runtime import Message, Output, Poison, Result, Service
from edi.services.store import BackboneSettings


class RouterSettings(BackboneSettings, CapabilityPolicySettings):
    pass


def build(
    feed: RegistryFeed, attachments: Attachments | None = None,
    policy: CapabilityPolicy = CapabilityPolicy.REGISTERED,
) -> Service:
    service = Service("router")

    @service.handler(ACCEPTED, payload=AcceptedMessage, outputs=[DELIVERIES, STATUS, REJECTED])
    async def route_message(message: Message[AcceptedMessage]) -> Result:
        accepted = message.payload
        if isinstance(accepted.document, BlobRef):
            return Poison("documents by claim check (BlobRef) are not routed yet")
        facts = accepted.facts
        # The document is parsed only when the writer gave no facts (a record of an older ingress), or when it
        # has attachments for the object service to handle.
        header: RoutingHeader | None = None
        if facts is None or (attachments is not None and facts.has_attachments):
            try:
                header = read_routing_header(accepted.document, "the accepted document")
            except InvalidInputError as exc:  # accepted means validated: this record was not written by ingress
                return Poison(str(exc))
        document = accepted.document
        objects: list[BlobRef] = []
        if attachments is not None and header is not None:
            offloaded = await attachments.offload(document, header)
            document = offloaded.document
            objects = offloaded.objects + await attachments.referenced(header)
        if facts is not None:
            kind = MessageKind(accepted.business_namespace, facts.message_function, facts.service_description)
            apprec = facts.is_apprec
        else:
            assert header is not None  # parsed above
            kind, apprec = MessageKind.of(header), header.is_apprec
        view = await feed.wait_ready()
        now = datetime.now(UTC)
        routing = route(view, kind, accepted.receiver_her_ids, now, policy)
        receivers, refused = list(routing.receivers), list(routing.refused)
        too_large = attachments.too_large_inline(document, objects) if attachments and objects else None
        if too_large is not None:
            inline = [r for r in receivers if gets_inline(r.receiver_her_id, view)]
            receivers = [r for r in receivers if r not in inline]
            refused += [RefusedReceiver(r.receiver_her_id, too_large) for r in inline]
        kind_name = kind.name
        outputs = [
            Output(DELIVERIES, Delivery(
                message_id=accepted.message_id, receiver_her_id=r.receiver_her_id,
                sender_her_id=accepted.sender_her_id, msg_id=accepted.msg_id, message_type=accepted.message_type,
                business_namespace=accepted.business_namespace, document=document,
                received_at=accepted.received_at, attachments=objects, facts=facts, kind=kind_name,
                unchecked_reason=None if r.unchecked is None else r.unchecked.value,
            ), correlation=message.correlation.child(receiver_her_id=r.receiver_her_id))
            for r in receivers
        ]
        outputs += [
            Output(STATUS, StatusChange(message_id=accepted.message_id, receiver_her_id=r.receiver_her_id,
                                        transport_state=TransportState.REJECTED, at=now))
            for r in refused
        ]
        if refused:
            metrics.refused("router", (r.problem.apprec_code.value for r in refused))
            outputs.append(Output(REJECTED, Rejection(
                message_id=accepted.message_id, sender_her_id=accepted.sender_her_id or None, msg_id=accepted.msg_id,
                errors=[ErrorDetail.of(r.problem) for r in refused],
                original_message_type=accepted.message_type,
                original_is_apprec=apprec,
                document=document, rejected_at=now,
            )))
        return outputs

    return service
