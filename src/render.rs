//! Rendering a [`System`] into the Kubernetes objects that run it, through Tera templates.
//!
//! Pure: the same System and settings give byte-identical output.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};

use crate::model::System;

/// Operator settings that influence rendering.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderSettings {
    /// Extended resource name that `gpus` maps to.
    pub gpu_resource: String,
    /// Directory whose `*.yaml.tera` templates override the embedded ones.
    pub template_dir: Option<PathBuf>,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings { gpu_resource: "nvidia.com/gpu".to_string(), template_dir: None }
    }
}

/// The workload object of a System.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadObject {
    /// A Deployment.
    Deployment(Box<Deployment>),
    /// A bare Pod.
    Pod(Box<Pod>),
}

/// Everything one System renders to.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The Deployment or Pod.
    pub workload: WorkloadObject,
    /// The Service, when some port is exposed and `expose` is not `None`.
    pub service: Option<Service>,
    /// The ConfigMap carrying pre-boot files, when some container has files.
    pub config_map: Option<ConfigMap>,
}

/// Errors of rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Being written.
    #[error("rendering is not implemented yet")]
    NotImplemented,
}

/// Compiled templates plus settings.
#[derive(Debug)]
pub struct Renderer {
    settings: RenderSettings,
}

impl Renderer {
    /// Compile the embedded templates, overridden by `settings.template_dir`.
    pub fn new(settings: RenderSettings) -> Result<Self, RenderError> {
        Ok(Renderer { settings })
    }

    /// The settings this renderer was built with.
    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    /// Render one System.
    pub fn render(&self, _system: &System) -> Result<Rendered, RenderError> {
        Err(RenderError::NotImplemented)
    }
}
