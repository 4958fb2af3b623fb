"""OData query options as Graph implements them for directory objects: $filter, $select, $top, $search, paging."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import COUNT_UNSUPPORTED, SEARCH_NEEDS_CONSISTENCY, bad_request, unsupported_query

DEFAULT_PAGE = 100
MAX_PAGE = 999
MAX_IN_VALUES = 15

TOKEN_RE = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<punct>[(),:])|(?P<name>[A-Za-z_@$#][\w./@$#-]*))"
)


class FilterSyntaxError(ValueError):
    pass


@dataclass
class Node:
    kind: str  # "and" | "or" | "not" | "cmp" | "in" | "func" | "any"
    children: list[Node] = field(default_factory=list)
    prop: str = ""
    op: str = ""
    values: list[Any] = field(default_factory=list)

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = TOKEN_RE.match(text, position)
        if not match or match.end() == position:
            raise FilterSyntaxError(f"Syntax error at position {position} in '{text}'.")
        position = match.end()
        if match.group("str") is not None:
            tokens.append(("lit", match.group("str")[1:-1].replace("''", "'")))
        elif match.group("num") is not None:
            number = match.group("num")
            tokens.append(("lit", float(number) if "." in number else int(number)))
        elif match.group("punct") is not None:
            tokens.append((match.group("punct"), match.group("punct")))
        else:
            name = match.group("name")
            lowered = name.lower()
            if lowered in ("true", "false"):
                tokens.append(("lit", lowered == "true"))
            elif lowered == "null":
                tokens.append(("lit", None))
            else:
                tokens.append(("name", name))
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise FilterSyntaxError("Unexpected end of the filter expression.")
        if kind is not None and token[0] != kind:
            raise FilterSyntaxError(f"Expected {kind} but found '{token[1]}'.")
        if value is not None and str(token[1]).lower() != value:
            raise FilterSyntaxError(f"Expected '{value}' but found '{token[1]}'.")
        self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "name" and token[1].lower() == word:
            self.index += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek() is not None:
            raise FilterSyntaxError(f"Unexpected '{self.peek()[1]}'.")  # type: ignore[index]
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.keyword("or"):
            node = Node("or", [node, self.parse_and()])
        return node

    def parse_and(self) -> Node:
        node = self.parse_unary()
        while self.keyword("and"):
            node = Node("and", [node, self.parse_unary()])
        return node

    def parse_unary(self) -> Node:
        if self.keyword("not"):
            return Node("not", [self.parse_unary()])
        token = self.peek()
        if token is not None and token[0] == "(":
            self.take("(")
            node = self.parse_or()
            self.take(")")
            return node
        return self.parse_primary()

    def literal(self) -> Any:
        return self.take("lit")[1]

    def parse_primary(self) -> Node:
        name = self.take("name")[1]
        lowered = name.lower()
        nxt = self.peek()
        if lowered in ("startswith", "endswith") and nxt is not None and nxt[0] == "(":
            self.take("(")
            prop = self.take("name")[1]
            self.take(",")
            value = self.literal()
            self.take(")")
            return Node("func", prop=prop, op=lowered, values=[value])
        if "/" in name and name.lower().endswith("/any") and nxt is not None and nxt[0] == "(":
            self.take("(")
            variable = self.take("name")[1]
            self.take(":")
            inner = self.take("name")[1]
            if inner != variable:
                raise FilterSyntaxError("Lambda body must compare the range variable.")
            op = self.take("name")[1].lower()
            value = self.literal()
            self.take(")")
            return Node("any", prop=name[: -len("/any")], op=op, values=[value])
        if lowered == "any":
            raise FilterSyntaxError("any() needs a collection.")
        op = self.take("name")[1].lower()
        if op == "in":
            self.take("(")
            values = [self.literal()]
            while self.peek() is not None and self.peek()[0] == ",":  # type: ignore[index]
                self.take(",")
                values.append(self.literal())
            self.take(")")
            return Node("in", prop=name, values=values)
        if op not in ("eq", "ne", "ge", "le", "gt", "lt"):
            raise FilterSyntaxError(f"Unknown operator '{op}'.")
        return Node("cmp", prop=name, op=op, values=[self.literal()])


def parse_filter(text: str) -> Node:
    try:
        return _Parser(text).parse()
    except FilterSyntaxError as error:
        raise bad_request(f"Invalid filter clause: {error}") from None


def check_filter(node: Node, allowed: set[str], type_name: str, advanced: bool) -> None:
    """Refuse what Graph refuses: too many `in` values, unknown properties, advanced-only operators."""
    for item in node.walk():
        if item.kind == "in" and len(item.values) > MAX_IN_VALUES:
            raise unsupported_query(
                "Too many child clauses specified in search filter expression containing 'OR' operators: "
                f"{len(item.values)}. Max allowed: {MAX_IN_VALUES}."
            )
        if item.prop and item.prop not in allowed:
            raise bad_request(f"Could not find a property named '{item.prop}' on type '{type_name}'.")
        needs_advanced = (
            item.kind == "not"
            or (item.kind == "cmp" and item.op == "ne")
            or (item.kind == "func" and item.op == "endswith")
        )
        if needs_advanced and not advanced:
            raise unsupported_query()
        if item.kind == "cmp" and item.op in ("ge", "le", "gt", "lt") and item.prop == "id":
            raise unsupported_query("The request uses a filter property that is not indexed")


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def evaluate(node: Node, obj: dict[str, Any]) -> bool:
    kind = node.kind
    if kind == "and":
        return all(evaluate(child, obj) for child in node.children)
    if kind == "or":
        return any(evaluate(child, obj) for child in node.children)
    if kind == "not":
        return not evaluate(node.children[0], obj)
    actual = obj.get(node.prop)
    if kind == "in":
        wanted = {_fold(v) for v in node.values}
        return _fold(actual) in wanted
    if kind == "func":
        if not isinstance(actual, str):
            return False
        prefix = str(node.values[0]).casefold()
        return (
            actual.casefold().startswith(prefix)
            if node.op == "startswith"
            else actual.casefold().endswith(prefix)
        )
    if kind == "any":
        target = _fold(node.values[0])
        items = actual or []
        if node.op == "eq":
            return any(_fold(item) == target for item in items)
        if node.op == "ne":
            return any(_fold(item) != target for item in items)
        return False
    value = node.values[0]
    if node.op == "eq":
        return bool(_fold(actual) == _fold(value))
    if node.op == "ne":
        return bool(_fold(actual) != _fold(value))
    if actual is None or value is None:
        return False
    try:
        if node.op == "ge":
            return bool(actual >= value)
        if node.op == "le":
            return bool(actual <= value)
        if node.op == "gt":
            return bool(actual > value)
        return bool(actual < value)
    except TypeError:
        return False


# ---- $search -----------------------------------------------------------------------------------

SEARCH_CLAUSE_RE = re.compile(r'"(?P<prop>[A-Za-z]+):(?P<term>[^"]*)"|(?P<op>AND|OR)', re.IGNORECASE)
WORD_SPLIT_RE = re.compile(r"[\s._@-]+")


def parse_search(text: str) -> Callable[[dict[str, Any]], bool]:
    """Graph's directory $search: tokenised, case-insensitive prefix match per "property:term" clause."""
    clauses: list[tuple[str, str]] = []
    operators: list[str] = []
    for match in SEARCH_CLAUSE_RE.finditer(text):
        if match.group("op"):
            operators.append(match.group("op").upper())
        else:
            clauses.append((match.group("prop"), match.group("term").casefold()))
    if not clauses:
        raise bad_request('Invalid search clause: a search clause must be written as "property:value".')

    def matches(obj: dict[str, Any], prop: str, term: str) -> bool:
        value = obj.get(prop)
        if not isinstance(value, str):
            return False
        folded = value.casefold()
        if folded.startswith(term):
            return True
        return any(word.startswith(term) for word in WORD_SPLIT_RE.split(folded) if word)

    def predicate(obj: dict[str, Any]) -> bool:
        result = matches(obj, *clauses[0])
        for index, clause in enumerate(clauses[1:]):
            op = operators[index] if index < len(operators) else "AND"
            result = (result or matches(obj, *clause)) if op == "OR" else (result and matches(obj, *clause))
        return result

    return predicate


# ---- request-level options ---------------------------------------------------------------------


@dataclass
class QueryOptions:
    top: int
    select: list[str] | None
    filter: Node | None
    search: Callable[[dict[str, Any]], bool] | None
    count: bool
    orderby: tuple[str, bool] | None  # (property, descending)
    skiptoken: dict[str, Any] | None
    eventual: bool


def parse_top(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    try:
        top = int(raw)
    except ValueError:
        raise bad_request(
            f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive."
        ) from None
    if not 1 <= top <= MAX_PAGE:
        raise bad_request(f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.")
    return top


def parse_select(raw: str | None, allowed: set[str], type_name: str) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in allowed:
            raise bad_request(f"Could not find a property named '{name}' on type '{type_name}'.")
    return names


def parse_options(
    query: dict[str, str],
    headers: dict[str, str],
    *,
    allowed: set[str],
    type_name: str,
    filter_needs_advanced: bool = False,
) -> QueryOptions:
    eventual = headers.get("consistencylevel", "").lower() == "eventual"
    count = query.get("$count", "").lower() == "true" and eventual
    advanced = eventual and query.get("$count", "").lower() == "true"
    node = None
    if "$filter" in query:
        node = parse_filter(query["$filter"])
        if filter_needs_advanced and not advanced:
            raise unsupported_query()
        check_filter(node, allowed, type_name, advanced)
    search = None
    if "$search" in query:
        if not eventual:
            raise unsupported_query(SEARCH_NEEDS_CONSISTENCY)
        search = parse_search(query["$search"])
    orderby = None
    if "$orderby" in query:
        parts = query["$orderby"].split()
        if not parts or parts[0] not in allowed:
            raise unsupported_query()
        orderby = (parts[0], len(parts) > 1 and parts[1].lower() == "desc")
    return QueryOptions(
        top=parse_top(query.get("$top")),
        select=parse_select(query.get("$select"), allowed, type_name),
        filter=node,
        search=search,
        count=count,
        orderby=orderby,
        skiptoken=decode_skiptoken(query["$skiptoken"]) if "$skiptoken" in query else None,
        eventual=eventual,
    )


def require_count_header(headers: dict[str, str]) -> None:
    if headers.get("consistencylevel", "").lower() != "eventual":
        raise bad_request(COUNT_UNSUPPORTED)


# ---- paging ------------------------------------------------------------------------------------

SKIPTOKEN_PREFIX = "RFNwdAIA"  # opaque marker; callers must follow nextLink as given


def encode_skiptoken(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return SKIPTOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str) -> dict[str, Any]:
    if not token.startswith(SKIPTOKEN_PREFIX):
        raise bad_request("Invalid skip token.", code="Request_BadRequest")
    body = token[len(SKIPTOKEN_PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, json.JSONDecodeError):
        raise bad_request("Invalid skip token.") from None
    if not isinstance(data, dict):
        raise bad_request("Invalid skip token.")
    return data


def project(obj: dict[str, Any], select: list[str] | None, defaults: list[str]) -> dict[str, Any]:
    names = select if select is not None else defaults
    return {name: obj.get(name) for name in names}


def context_suffix(entity_set: str, select: list[str] | None) -> str:
    return f"{entity_set}({','.join(select)})" if select else entity_set
