"""Bulk assignment of customers to a layer's territories."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response, status

from app.assign import assign_layer
from app.auth import READ, WRITE
from app.db import SessionDep
from app.errors import NotFoundError
from app.indexes import IndexDep
from app.repositories import assignments, customers, layers, territories
from app.routes.params import PROBLEMS, CustomerId
from app.schemas import AssignPublic, OwnershipPublic, PinCreate, TerritoryRef

router = APIRouter(tags=["assignments"], responses=PROBLEMS, dependencies=[READ])


@router.post("/layers/{layer}/assign", response_model=AssignPublic, dependencies=[WRITE])
def assign(layer: str, session: SessionDep, registry: IndexDep) -> AssignPublic:
    """Assign every customer to the territory that owns it, in one transaction, with counts."""
    result = assign_layer(session, layer=layer, registry=registry)
    session.commit()
    return AssignPublic(**asdict(result))


@router.put(
    "/layers/{layer}/pins/{customer_id}", response_model=OwnershipPublic, dependencies=[WRITE]
)
def pin_customer(
    layer: str,
    customer_id: CustomerId,
    body: PinCreate,
    session: SessionDep,
) -> OwnershipPublic:
    """Pin a customer to a territory of the layer (a named account): it wins over geography."""
    target = layers.get_by_name(session, name=layer, for_change=True)
    customers.location(session, customer_id=customer_id)  # 404 for an unknown customer
    territory = territories.ref(session, layer_id=target.id, territory_id=body.territory_id)
    assignments.pin(
        session, layer_id=target.id, customer_id=customer_id, territory_id=body.territory_id
    )
    session.commit()
    return OwnershipPublic(layer=layer, territory=TerritoryRef(**territory), rule="pinned")


@router.delete(
    "/layers/{layer}/pins/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WRITE],
)
def unpin_customer(layer: str, customer_id: CustomerId, session: SessionDep) -> Response:
    """Remove a pin: geography decides again (now, if the layer is kept assigned)."""
    target = layers.get_by_name(session, name=layer, for_change=True)
    if not assignments.unpin(session, layer_id=target.id, customer_id=customer_id):
        raise NotFoundError(f"customer {customer_id} is not pinned in layer '{layer}'", field="id")
    if target.assigned_at is not None:  # kept current: geography decides again, now
        assignments.reassign(session, layer_id=target.id, customer_ids=[customer_id])
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
