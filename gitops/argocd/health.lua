-- Argo CD health check for tycho.dev/System.
--
-- Driven by what the Tycho controller writes: status.observedGeneration, the Ready / Progressing / Degraded
-- conditions (each with its own observedGeneration) and status.phase. Install it through argocd-cm
-- (see argocd-cm.yaml beside this file) under resource.customizations.health.tycho.dev_System.
local hs = {}

local function condition(status, type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function message_of(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local generation = obj.metadata.generation
local status = obj.status

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "The System is paused (scaled to zero)"
  return hs
end

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tycho controller to observe the System"
  return hs
end

if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tycho controller to observe generation " .. tostring(generation)
    .. " (status describes generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local ready = condition(status, "Ready")
local progressing = condition(status, "Progressing")
local degraded = condition(status, "Degraded")

-- A condition written for an older generation says nothing about the current spec.
local function current(c)
  if c == nil then
    return nil
  end
  if generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation then
    return nil
  end
  return c
end
ready = current(ready)
progressing = current(progressing)
degraded = current(degraded)

if status.phase == "Failed" or (degraded ~= nil and degraded.status == "True") then
  hs.status = "Degraded"
  hs.message = message_of(degraded, "The System cannot run as written")
  return hs
end

if status.phase == "Expiring" then
  hs.status = "Degraded"
  hs.message = message_of(ready, "The System's session ended; it is being deleted")
  return hs
end

if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = message_of(progressing, "Rolling out")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, "All replicas are ready")
  return hs
end

local session = current(condition(status, "SessionValid"))
if session ~= nil and session.status == "False" then
  hs.status = "Progressing"
  hs.message = message_of(session, "Waiting for the System's session Lease")
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "Waiting for the System to become ready")
return hs
