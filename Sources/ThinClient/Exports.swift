// The thin client's public API uses ThinWire's geometry and error-code types; re-export them so
// that `import ThinClient` is enough for apps.
@_exported import ThinWire
