"""OpenAPI post-processing: every operation documents the errors the API can answer with, in the one error shape.

drf-spectacular documents what a view declares; the errors below come from the framework around every view
(authentication, permissions, throttles, parsers, the URL's object lookup, the body size limit), so they are added
here once instead of on each view.
"""

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {}, "description": "field -> messages (4xx from input)"},
    },
    "required": ["detail"],
}
COMMON = {
    "400": "The request is malformed or a field is invalid (see errors).",
    "401": "Not signed in, or the token is wrong.",
    "403": "Signed in, but this role may not do this.",
    "404": "No such object (or route).",
    "405": "This route does not take this method.",
    "429": "Too many requests: wait and retry.",
}
WITH_BODY = {
    "413": "The request body is larger than the limit.",
    "415": "The body's content type is not one this operation reads.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            errors = {**COMMON, **(WITH_BODY if method in ("post", "put", "patch") else {})}
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}
                )
    return result
