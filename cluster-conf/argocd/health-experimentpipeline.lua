-- Argo CD health check for tycho.dev/ExperimentPipeline.
--
-- Embedded in argocd-cm under resource.customizations.health.tycho.dev_ExperimentPipeline
-- (argocd-cm-health.yaml holds the same text; a test keeps the two equal). Argo CD runs
-- it with the live object as `obj` (Lua 5.1) and reads hs.status / hs.message.
--
--   no status yet / generation not observed  -> Progressing
--   Pending, Running                         -> Progressing (Degraded if condition Degraded=True)
--   Succeeded                                -> Healthy
--   Failed, Invalid (or condition Valid=False) -> Degraded
--   Suspended                                -> Suspended
--   anything else                            -> Unknown
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(value)
  if value == nil then
    return ""
  end
  return tostring(value)
end

-- "prefix: a, b" without empty parts.
local function describe(prefix, ...)
  local parts = {}
  for i = 1, select("#", ...) do
    local part = text(select(i, ...))
    if part ~= "" then
      table.insert(parts, part)
    end
  end
  if #parts == 0 then
    return prefix
  end
  return prefix .. ": " .. table.concat(parts, ", ")
end

local status = obj.status
if status == nil or status.phase == nil or status.phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tycho operator to pick up the pipeline"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. text(generation)
  return hs
end

local phase = status.phase
local valid = condition(status, "Valid")
local degraded = condition(status, "Degraded")

if phase == "Invalid" or (valid ~= nil and valid.status == "False") then
  local detail = status.message
  if (detail == nil or detail == "") and valid ~= nil then
    detail = valid.message
  end
  hs.status = "Degraded"
  hs.message = describe("Invalid pipeline", detail)
elseif phase == "Failed" then
  local detail = status.message
  if (detail == nil or detail == "") and degraded ~= nil then
    detail = degraded.message
  end
  hs.status = "Degraded"
  hs.message = describe("Failed", detail, status.progress)
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = describe("Succeeded", status.headline, status.progress)
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe("Suspended", status.progress)
elseif phase == "Pending" or phase == "Running" then
  if degraded ~= nil and degraded.status == "True" then
    hs.status = "Degraded"
    hs.message = describe(phase, degraded.message, status.progress)
  else
    hs.status = "Progressing"
    hs.message = describe(phase, status.progress, status.headline)
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. text(phase)
end
return hs
