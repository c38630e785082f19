"""The model registry: list (filters, AIP-158 pages), point reads (id or unique prefix), status
transitions and deletes (write scope), and predictions from a registered model."""

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi import Path as PathParam
from starlette.responses import Response

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import ImportanceNotFoundError, InvalidInputError
from hikyuu_qlib.domain.model import ModelStatus, ModelType
from hikyuu_qlib.domain.queries import ModelFilter
from hikyuu_qlib.service.deps import READ, WRITE, json_response, state_of
from hikyuu_qlib.service.formats import frame_response, negotiate
from hikyuu_qlib.service.problems import error_doc, problems
from hikyuu_qlib.service.routers.market import FRAME_RESPONSE
from hikyuu_qlib.service.schemas import (
    MODEL_ID_PATTERN,
    MODEL_REF_PATTERN,
    ImportanceOut,
    ModelOut,
    ModelPage,
    PredictionRequest,
    PredictionsOut,
    Transition,
    TransitionOut,
)
from hikyuu_qlib.service.state import ServiceState
from hikyuu_qlib.settings import Settings

StatusName = Literal["created", "training", "trained", "deployed", "archived", "failed"]
TypeName = Literal[
    "lightgbm",
    "xgboost",
    "catboost",
    "linear",
    "mlp",
    "lstm",
    "gru",
    "transformer",
    "tabnet",
    "double_ensemble",
]
ModelRef = Annotated[str, PathParam(pattern=MODEL_REF_PATTERN, description="a model id or a unique prefix")]
ModelId = Annotated[
    str, PathParam(pattern=MODEL_ID_PATTERN, description="a whole model id (deletes take no prefix)")
]

_MODEL_LINKS = {
    "GetModel": {"operationId": "getModel", "parameters": {"model_ref": "$response.body#/id"}},
    "PromoteModel": {"operationId": "promoteModel", "parameters": {"model_ref": "$response.body#/id"}},
    "GetModelJob": {
        "operationId": "getJob",
        "description": "the job that trained the model (a model trained by a job carries its id)",
        "parameters": {"job_id": "$response.body#/tags/job_id"},
    },
    "GetModelImportance": {
        "operationId": "getModelImportance",
        "description": "the model's feature importance (its top features of each kind)",
        "parameters": {"model_ref": "$response.body#/id"},
    },
    "Predict": {
        "operationId": "predict",
        "description": "scores of the model over its train segment",
        "requestBody": {
            "model": "$response.body#/id",
            "start": "$response.body#/segments/train/0",
            "end": "$response.body#/segments/train/1",
        },
    },
}


async def resolve(state: ServiceState, ref: str) -> str:
    """A whole id as given, else the one id the prefix names (404 none, 400 several)."""
    return ref.upper() if len(ref) == 26 else await state.models.resolve(ref)


def _tags(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"invalid tag {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["models"])
    max_page = settings.api_max_page_size
    predict_lock = threading.Lock()

    @api.get(
        "/v1/models",
        response_model=ModelPage,
        operation_id="listModels",
        summary="Models, filtered, one page at a time (newest first by default)",
        dependencies=READ,
        responses={
            200: {
                "description": "one page",
                "links": {
                    "GetFirstModel": {
                        "operationId": "getModel",
                        "parameters": {"model_ref": "$response.body#/models/0/id"},
                    }
                },
            },
            **problems(400, 401, 403, 422),
        },
    )
    async def list_models(
        request: Request,
        status: Annotated[StatusName | None, Query()] = None,
        type: Annotated[TypeName | None, Query(description="model type")] = None,
        name: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        tag: Annotated[
            list[str] | None,
            Query(description="KEY=VALUE; repeat for several (all must hold)", max_length=20),
        ] = None,
        order: Annotated[Literal["created", "-created", "name", "-name"], Query()] = "-created",
        page_size: Annotated[int, Query(ge=1, le=max_page, description=f"1..{max_page}")] = 50,
        page_token: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        state = state_of(request)
        flt = ModelFilter(
            status=None if status is None else ModelStatus(status),
            model_type=None if type is None else ModelType(type),
            name=name,
            tags=_tags(tag),
        )
        page = await state.models.find(flt, order=order, limit=page_size, cursor=page_token or None)
        return json_response(
            {"models": [m.to_json() for m in page.items], "next_page_token": page.next_cursor}
        )

    @api.get(
        "/v1/models/{model_ref}",
        response_model=ModelOut,
        operation_id="getModel",
        summary="One model, by id or unique id prefix",
        dependencies=READ,
        responses={
            200: {"description": "the model", "links": _MODEL_LINKS},
            **problems(400, 401, 403, 404, 422),
        },
    )
    async def get_model(request: Request, model_ref: ModelRef) -> Response:
        state = state_of(request)
        model = await state.models.get(await resolve(state, model_ref))
        return json_response(model.to_json())

    @api.get(
        "/v1/models/{model_ref}/importance",
        response_model=ImportanceOut,
        operation_id="getModelImportance",
        summary="A model's feature importance: the top features of each kind (gain, split, coef …)",
        dependencies=READ,
        responses=problems(400, 401, 403, 404, 422),
    )
    async def get_importance(
        request: Request,
        model_ref: ModelRef,
        top: Annotated[
            int, Query(ge=1, le=max_page, description=f"features per kind, largest first (1..{max_page})")
        ] = 20,
    ) -> Response:
        from hikyuu_qlib.modelling.importance import KINDS, load_importance, summary

        state = state_of(request)
        model = await state.models.get(await resolve(state, model_ref))
        research = state.research

        def read() -> Any:
            with predict_lock:  # the context opens its artifact store once
                artifacts = research.artifacts
            return load_importance(model, artifacts)

        importance = await state.run_blocking(read)
        if importance is None:
            raise ImportanceNotFoundError(f"model {model.id} has no feature importance (stored without one)")
        doc = {
            "model_id": model.id,
            "top": top,
            "importance": summary(importance, top),
            "features": {kind: len(values) for kind, values in importance.items()},
            "kinds": {kind: KINDS.get(kind, kind) for kind in importance},
        }
        return json_response(doc)

    @api.post(
        "/v1/models/{model_ref}/promote",
        response_model=TransitionOut,
        operation_id="promoteModel",
        summary="Move a model along its lifecycle (trained → deployed → archived …)",
        dependencies=WRITE,
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def promote(
        request: Request, model_ref: ModelRef, transition: Annotated[Transition | None, Body()] = None
    ) -> Response:
        state = state_of(request)
        full = await resolve(state, model_ref)
        before = (await state.models.get(full)).status
        target = (transition or Transition()).to
        model = await state.models.transition(full, target)
        return json_response(
            {"id": model.id, "from": before.value, "to": model.status.value, "model": model.to_json()}
        )

    @api.delete(
        "/v1/models/{model_ref}",
        status_code=204,
        operation_id="deleteModel",
        summary="Delete a model record (by its whole id; artifact files are kept)",
        dependencies=WRITE,
        responses=problems(400, 401, 403, 404, 422),
    )
    async def delete_model(request: Request, model_ref: ModelId) -> Response:
        state = state_of(request)
        full = model_ref.upper()
        if not await state.models.delete(full):
            await state.models.get(full)  # raises ModelNotFoundError
        return Response(status_code=204)

    @api.post(
        "/v1/predictions",
        response_model=PredictionsOut,
        operation_id="predict",
        summary="Scores of a registered model over a universe and dates (datetime, code, score)",
        dependencies=READ,
        responses={**FRAME_RESPONSE, **problems(400, 401, 403, 404, 406, 413, 422)},
    )
    async def predict(
        request: Request,
        body: PredictionRequest,
        accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        state = state_of(request)
        fmt = negotiate(accept)
        full = await resolve(state, body.model)
        record = await state.models.get(full)
        dates = DateRange.of(body.start, body.end)
        universe = body.universe or record.universe
        research = state.research

        def run() -> Any:
            from hikyuu_qlib.modelling import service

            with predict_lock:  # the context opens its store, registry and predictor once
                features, predictor = research.features, research.predictor
            return service.predict_partial(
                full,
                predictor=predictor,
                store=features,
                universe=research.universe(universe, dates),
                dates=dates,
                cache=research.cache,
            )

        result = await state.run_compute(run)
        meta = {"model_id": full, "universe": universe, "errors": error_doc(dict(result.errors))}
        return frame_response(result.frame, fmt, key="scores", meta=meta, executor=state.blocking)

    return api
