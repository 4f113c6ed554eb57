// Routing (issue #24): which named pool a session (or a transaction) goes to. Pure.
export { DomainSet, domainOf, normalizeDomain, parseDomainList } from './domains.js';
export { RouteTable, CompiledRoute, type AuthMatch, type RouteFacts, type RouteResult, type RouteSpec } from './table.js';
export { analyseRoutes, describeResult, parseRouteQuery, RouteQueryError, type RouteWarning } from './analyse.js';
